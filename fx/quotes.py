"""Locked quotes: a priced conversion kept in Redis for its lifetime, usable exactly once.

A quote is stored with its expiry; using it is one Redis script that refuses an unknown,
expired or already used quote, atomically across every process. The record outlives the
quote by a grace (`KOVRA_QUOTE_RECORD_GRACE_SECONDS`, a day by default), so a late caller
learns "expired" or "already used" instead of "not found", and a transfer retried after its
quote expired still finds what it counted against the daily limit. At high quote rates the
grace is what sets Redis' memory: a day at 5,000 quotes/s is some 365 GB, an hour 18 GB.
Using a quote names its consumer (the transfer): the same consumer may use it again (a
retry), nobody else can.
"""

from __future__ import annotations

import datetime
from typing import Final, Literal

import msgspec
from redis.asyncio import Redis

from ledger.errors import DomainError
from ledger.invariants import ensure, unreachable

quote_ttl_seconds_default = 600
quote_ttl_seconds_max = 3600
record_grace_seconds_default = 86_400
# The grace may not end before the reconciler has given back a voided payout's count, which
# it reads from the quote's record (see `gateway.transfers.admission`); settings check it.
record_grace_seconds_min = 900
record_grace_seconds_max = 7 * 86_400
key_suffix = "quote"


class QuoteExpired(DomainError):
    code = "quote_expired"


class QuoteAlreadyUsed(DomainError):
    code = "quote_already_used"


class QuoteNotFound(DomainError):
    code = "not_found"


class LockedQuote(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    tenant_id: int
    source_currency: str
    target_currency: str
    source_amount: int
    target_amount: int
    fee_amount: int
    rate: str
    mid_rate: str
    margin_bps: int
    rate_observed_at: datetime.datetime
    created_at: datetime.datetime
    expires_at: datetime.datetime
    # The source amount and fee in US cents at the quote's mid rates: what paying it counts
    # against the daily limit, locked with the rate so a transfer needs no rate of its own.
    # None on quotes stored before it was recorded; those are valued when they are paid.
    usd_equivalent_minor: int | None = None


class QuoteState(msgspec.Struct, frozen=True, kw_only=True):
    quote: LockedQuote
    status: Literal["active", "used", "expired"]


# KEYS[1] the quote; ARGV[1] its JSON, ARGV[2] its expiry (ms), ARGV[3] the record's TTL (s).
# Stores the quote unless one is stored under this id already; returns that first one, or
# nil. One script, so a quote is never stored without its expiry or its TTL.
_save_script = """
local first = redis.call('HGET', KEYS[1], 'quote')
if first then return first end
redis.call('HSET', KEYS[1], 'quote', ARGV[1], 'expires_at_ms', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return false
"""


# Whether `consumer` may use the quote at `key` at `now_ms`, changing nothing: 0 unknown,
# 1 used by another, 2 expired, or 3 and the quote's JSON. A Lua function, so the scripts
# that use a quote together with other records (gateway.transfers.admission) decide alike.
quote_usable_lua = """
local function quote_usable(key, now_ms, consumer)
  local fields = redis.call('HMGET', key, 'quote', 'used_by', 'expires_at_ms')
  local quote, used_by = fields[1], fields[2]
  if not quote then return 0 end
  if used_by and used_by ~= consumer then return 1 end
  if not used_by and tonumber(now_ms) >= tonumber(fields[3]) then return 2 end
  return 3, quote
end
"""
quote_unknown: Final = 0
quote_used: Final = 1
quote_expired: Final = 2
quote_granted: Final = 3

# KEYS[1] the quote; ARGV[1] now (ms), ARGV[2] the consumer id.
# Returns {0} unknown, {1} used by another, {2} expired, {3, quote} granted.
_consume_script = (
    quote_usable_lua
    + """
local outcome, quote = quote_usable(KEYS[1], ARGV[1], ARGV[2])
if outcome ~= 3 then return {outcome} end
redis.call('HSET', KEYS[1], 'used_by', ARGV[2])
return {3, quote}
"""
)


# KEYS[1] the quote; ARGV[1] the consumer id. Frees the quote if that consumer holds it.
_release_script = """
if redis.call('HGET', KEYS[1], 'used_by') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'used_by')
  return 1
end
return 0
"""


def refusal(outcome: int) -> DomainError:
    """The error for a `quote_usable` outcome that refuses the quote."""
    if outcome == quote_unknown:
        return QuoteNotFound("no such quote")
    if outcome == quote_used:
        return QuoteAlreadyUsed("the quote was already used")
    if outcome == quote_expired:
        return QuoteExpired("the quote expired; request a new one")
    unreachable(f"quote outcome {outcome} is not a refusal")


def _ms(moment: datetime.datetime) -> int:
    return int(moment.timestamp() * 1000)


def consumer_token(consumer_id: int) -> str:
    """How a quote's record names the transfer that uses it (`used_by`)."""
    return f"{consumer_id:032x}"


class QuoteStore:
    def __init__(
        self,
        redis: Redis,
        *,
        namespace: str = "kovra",
        record_grace_seconds: int = record_grace_seconds_default,
    ) -> None:
        ensure(
            record_grace_seconds_min <= record_grace_seconds <= record_grace_seconds_max,
            "a quote's record outlives it by a bounded grace",
        )
        self._redis = redis
        self._namespace = namespace
        self._record_grace_seconds = record_grace_seconds
        self._save = redis.register_script(_save_script)
        self._consume = redis.register_script(_consume_script)
        self._release = redis.register_script(_release_script)

    def _key(self, tenant_id: int, quote_id: int) -> str:
        return f"{self._namespace}:{key_suffix}:{tenant_id}:{quote_id:032x}"

    def record_key(self, *, tenant_id: int, quote_id: int) -> str:
        """The Redis hash that holds the quote, for facts that must live exactly as long
        (what paying it counted against the daily limit, `compliance.limits.CountOnce`)."""
        return self._key(tenant_id, quote_id)

    async def save(self, quote: LockedQuote) -> LockedQuote:
        """Store the quote; with an id already stored (a retried request) keep the first."""
        key = self._key(quote.tenant_id, quote.id)
        lifetime = int((quote.expires_at - quote.created_at).total_seconds())
        ttl_seconds = lifetime + self._record_grace_seconds
        first = await self._save(
            keys=[key], args=[msgspec.json.encode(quote), _ms(quote.expires_at), ttl_seconds]
        )
        if first is None:
            return quote
        return msgspec.json.decode(first, type=LockedQuote)

    async def read(self, *, tenant_id: int, quote_id: int) -> QuoteState | None:
        """The tenant's quote and whether it is active, used or expired; None if unknown."""
        values = await self._redis.hmget(self._key(tenant_id, quote_id), ["quote", "used_by"])
        if values[0] is None:
            return None
        quote = msgspec.json.decode(values[0], type=LockedQuote)
        now = datetime.datetime.now(tz=datetime.UTC)
        status: Literal["active", "used", "expired"] = (
            "used" if values[1] is not None else "expired" if now >= quote.expires_at else "active"
        )
        return QuoteState(quote=quote, status=status)

    async def consume(
        self,
        *,
        tenant_id: int,
        quote_id: int,
        consumer_id: int,
        now: datetime.datetime | None = None,
    ) -> LockedQuote:
        """Use the quote for `consumer_id`, once; typed errors say why it cannot be used."""
        moment = now or datetime.datetime.now(tz=datetime.UTC)
        reply = await self._consume(
            keys=[self._key(tenant_id, quote_id)], args=[_ms(moment), consumer_token(consumer_id)]
        )
        outcome = int(reply[0])
        if outcome != quote_granted:
            raise refusal(outcome)
        return msgspec.json.decode(reply[1], type=LockedQuote)

    async def release(self, *, tenant_id: int, quote_id: int, consumer_id: int) -> bool:
        """Give the quote back when its consumer failed before moving money (e.g. the
        wallet could not pay); only the consumer holding it can."""
        released = await self._release(
            keys=[self._key(tenant_id, quote_id)], args=[consumer_token(consumer_id)]
        )
        return bool(released)
