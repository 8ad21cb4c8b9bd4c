"""A single transfer's admission in Redis: its recipient, its quote and its daily limit,
checked and taken by one script.

Before a transfer may hold funds in the ledger, three records in Redis must agree: the
recipient is known and active, the quote is still usable by this transfer and pays the
recipient's currency, and the payout fits under the tenant's daily limit. Asked one after
another they cost two round trips on the request path (the recipient and the quote shared
one), each a wait for the event loop and for Redis, and a refusal at the limit then had to
give the quote back. Here one script checks them in the order a client sees the errors and
changes nothing unless all pass; then, atomically, it counts the payout (once per transfer,
under the `CountOnce` marker in the quote's record) and marks the quote used by the
transfer. A refusal leaves nothing to give back.

An admitted transfer is also listed under the second it was admitted, with its quote and
that moment remembered, so the reconciler can give back an admission whose payout never
reached the ledger (`gateway.transfers.orphan_admissions`).

Two rare cases take another trip, and the script then runs again: a recipient not in Redis
(its published record expired) is loaded from Postgres and published, and a quote stored
without its USD equivalent (by an older version) is valued at current rates.
"""

from __future__ import annotations

import datetime
import enum
from dataclasses import dataclass
from typing import Any, Final

import msgspec
from redis.asyncio import Redis

from compliance.freezes.errors import RecipientFrozen
from compliance.limits import (
    CountOnce,
    DailyLimitExceeded,
    DailyLimits,
    Usage,
    count_lua,
    counter_ttl_seconds,
    milliseconds,
    usage_of,
    usd_minor_max,
)
from fx.pricing import usd_equivalent_minor
from fx.quoter import mid_rate
from fx.quotes import LockedQuote, QuoteStore, consumer_token, quote_usable_lua, refusal
from fx.rates import RateBook
from gateway.http.ids import encode_id
from gateway.http.ratelimit import Principal
from gateway.settings import reconcile_margin_seconds
from gateway.transfers.errors import (
    RecipientCurrencyMismatch,
    RecipientUnknown,
    RecipientUnreadable,
)
from gateway.transfers.recipients import RecipientRecord, Recipients, recipient_cache_key
from ledger.currencies import CurrencyRegistry
from ledger.invariants import ensure, unreachable

# The field of the quote's record that remembers what paying it counted against the limit.
daily_limit_counted_field: Final = "daily_limit_counted"
# Redis remembers the quote an admitted transfer used for the reconciler's delay plus
# `reconcile_margin_seconds`: a reservation whose transfer row never came is voided by the
# reconciler, which reads this to give the payout's count and quote back. At 5,000
# transfers/s and the default delay that is about three million keys of 152 bytes each
# (`MEMORY USAGE`).
payout_quote_margin_seconds: Final = reconcile_margin_seconds
# One run, then at most one after publishing the recipient and one after valuing the quote.
attempts_max: Final = 3


class Outcome(enum.IntEnum):
    """The first element of the script's reply."""

    recipient_unpublished = 10
    recipient_inactive = 11
    quote_refused = 12  # With the quote's own outcome (fx.quotes.refusal).
    currency_mismatch = 13  # With the quote and the recipient.
    usd_unknown = 14  # With the quote.
    limit_refused = 15  # With the count's reply (compliance.limits.usage_of).
    admitted = 16  # With the quote, the recipient and the count's reply.


# KEYS: the recipient's record, the quote's record (which holds the count-once marker too),
# the day counter, the hour counter, the transfer's quote (`quote_of`), the admissions of
# this second (`admitted_key`). ARGV: now (ms), the transfer (consumer), the daily limit,
# the counters' TTL, the marker's field, the USD amount or '' for the quote's own, the
# quote's id, how long to remember it (s), the transfer's entry among the admissions.
# The recipient's record is decoded whole (its name is free text); the quote's has no free
# text, and its USD equivalent stays below 2**53, so a Lua number holds it exactly.
_admit_lua: Final = (
    quote_usable_lua
    + count_lua
    + """
local recipient = redis.call('GET', KEYS[1])
if not recipient then return {10} end
local payee = cjson.decode(recipient)
if payee.status ~= 'active' then return {11} end
local outcome, quote = quote_usable(KEYS[2], ARGV[1], ARGV[2])
if outcome ~= 3 then return {12, outcome} end
local terms = cjson.decode(quote)
if terms.target_currency ~= payee.currency then return {13, quote, recipient} end
local amount = ARGV[6]
if amount == '' then
  local locked = terms.usd_equivalent_minor
  if type(locked) ~= 'number' or locked < 1 or locked > 9007199254740991 or locked % 1 ~= 0 then
    return {14, quote}
  end
  amount = string.format('%d', locked)
end
local counted = count(KEYS[3], KEYS[4], KEYS[2], ARGV[5], amount, ARGV[3], ARGV[4], ARGV[1])
if counted[1] == 0 then return {15, counted[1], counted[2]} end
redis.call('HSET', KEYS[2], 'used_by', ARGV[2])
redis.call('SET', KEYS[5], ARGV[7] .. ':' .. ARGV[1], 'EX', ARGV[8])
if redis.call('RPUSH', KEYS[6], ARGV[9]) == 1 then redis.call('EXPIRE', KEYS[6], ARGV[8]) end
return {16, quote, recipient, counted[1], counted[2], counted[3], counted[4] or amount,
  counted[5] or ARGV[1]}
"""
)


class Admitted(msgspec.Struct, frozen=True, kw_only=True):
    """A transfer let through: its quote (now used by it), its recipient, what it counted
    against the daily limit, and the marker that remembers the count."""

    quote: LockedQuote
    recipient: RecipientRecord
    usage: Usage
    counted: CountOnce


class TransferAdmission:
    """The admission script, registered once per Redis client. `namespace` is the recipient
    records' (`recipient_cache_key`); the quote store and the limits bring their own."""

    def __init__(
        self,
        redis: Redis,
        *,
        quotes: QuoteStore,
        limits: DailyLimits,
        namespace: str = "kovra",
        remember_quote_seconds: int = 30 + payout_quote_margin_seconds,
    ) -> None:
        ensure(remember_quote_seconds > 0, "a transfer's quote is remembered for a while")
        self._redis = redis
        self._script = redis.register_script(_admit_lua)
        self._quotes = quotes
        self._limits = limits
        self._namespace = namespace
        self._remember_quote_seconds = remember_quote_seconds

    def marker(self, *, tenant_id: int, quote_id: int) -> CountOnce:
        """Where paying this quote remembers its count: a retry of the same transfer (same
        Idempotency-Key, same id) after a failure further on is not counted again."""
        return CountOnce(
            key=self._quotes.record_key(tenant_id=tenant_id, quote_id=quote_id),
            field=daily_limit_counted_field,
        )

    async def quote_of(self, *, transfer_id: int) -> int | None:
        """The quote an admitted transfer used; None once Redis has forgotten it."""
        value: bytes | str | None = await self._redis.get(self.quote_of_key(transfer_id))
        if value is None:
            return None
        text = value.decode() if isinstance(value, bytes) else value
        # `quote:admitted_ms`; a value written before admissions were timed is the quote alone.
        return int(text.partition(":")[0], 16)

    def quote_of_key(self, transfer_id: int) -> str:
        """Where the admission remembers the transfer's quote and when it was admitted."""
        return f"{self._namespace}:transfer-quote:{transfer_id:032x}"

    def admitted_key(self, second: int) -> str:
        """The list of the transfers admitted in one second (Unix time), each as
        `tenant:transfer`, kept as long as the transfer's quote is remembered: what
        `gateway.transfers.orphan_admissions` checks against the ledger."""
        return f"{self._namespace}:admitted:{second}"

    @property
    def admitted_watermark_key(self) -> str:
        """The last second whose admissions were all checked against the ledger."""
        return f"{self._namespace}:admitted:watermark"

    @property
    def remember_seconds(self) -> int:
        return self._remember_quote_seconds

    async def run(
        self,
        *,
        tenant_id: int,
        transfer_id: int,
        quote_id: int,
        recipient_id: int,
        daily_limit_usd_minor: int,
        usd_minor: int | None,
        moment: datetime.datetime,
    ) -> list[Any]:
        """One run of the script; its reply, whose first element is the outcome."""
        marker = self.marker(tenant_id=tenant_id, quote_id=quote_id)
        moment_ms = milliseconds(moment)
        transfer = consumer_token(transfer_id)
        reply: list[Any] = await self._script(
            keys=[
                recipient_cache_key(tenant_id, recipient_id, self._namespace),
                marker.key,
                *self._limits.counter_keys(tenant_id=tenant_id, moment=moment),
                self.quote_of_key(transfer_id),
                self.admitted_key(moment_ms // 1000),
            ],
            args=[
                moment_ms,
                transfer,
                daily_limit_usd_minor,
                counter_ttl_seconds,
                marker.field,
                "" if usd_minor is None else usd_minor,
                f"{quote_id:032x}",
                self._remember_quote_seconds,
                f"{tenant_id}:{transfer}",
            ],
        )
        return reply


@dataclass(frozen=True, kw_only=True)
class AdmissionDependencies:
    """What admitting a transfer needs beyond the script: the recipients (to publish one
    Redis has forgotten), and the rates and currencies (to value a quote stored without
    its USD equivalent)."""

    admission: TransferAdmission
    recipients: Recipients
    rates: RateBook
    currencies: CurrencyRegistry


async def admit(
    dependencies: AdmissionDependencies,
    principal: Principal,
    *,
    transfer_id: int,
    quote_id: int,
    recipient_id: int,
    daily_limit_usd_minor: int,
) -> Admitted:
    """Let the transfer through, or raise the refusal (a `DomainError`) having changed
    nothing."""
    usd_minor: int | None = None
    for _ in range(attempts_max):
        moment = datetime.datetime.now(tz=datetime.UTC)
        reply = await dependencies.admission.run(
            tenant_id=principal.tenant_id,
            transfer_id=transfer_id,
            quote_id=quote_id,
            recipient_id=recipient_id,
            daily_limit_usd_minor=daily_limit_usd_minor,
            usd_minor=usd_minor,
            moment=moment,
        )
        match Outcome(int(reply[0])):
            case Outcome.recipient_unpublished:
                await _publish_recipient(dependencies.recipients, principal, recipient_id)
            case Outcome.recipient_inactive:
                raise RecipientFrozen("this recipient is frozen")
            case Outcome.quote_refused:
                raise refusal(int(reply[1]))
            case Outcome.currency_mismatch:
                raise _mismatch(
                    msgspec.json.decode(reply[1], type=LockedQuote),
                    msgspec.json.decode(reply[2], type=RecipientRecord),
                )
            case Outcome.usd_unknown:
                usd_minor = await _usd_at_current_rates(
                    dependencies, msgspec.json.decode(reply[1], type=LockedQuote)
                )
            case Outcome.limit_refused:
                usage_of(
                    reply[1:],
                    usd_minor=0,
                    moment=moment,
                    daily_limit_usd_minor=daily_limit_usd_minor,
                )
                unreachable("usage_of raises for a refused count")
            case Outcome.admitted:
                return Admitted(
                    quote=msgspec.json.decode(reply[1], type=LockedQuote),
                    recipient=msgspec.json.decode(reply[2], type=RecipientRecord),
                    usage=usage_of(
                        reply[3:],
                        usd_minor=int(reply[6]),
                        moment=moment,
                        daily_limit_usd_minor=daily_limit_usd_minor,
                    ),
                    counted=dependencies.admission.marker(
                        tenant_id=principal.tenant_id, quote_id=quote_id
                    ),
                )
            case other:
                unreachable(f"the admission script replied {other}")
    raise RecipientUnreadable("the recipient could not be read; retry the request")


async def _publish_recipient(
    recipients: Recipients, principal: Principal, recipient_id: int
) -> None:
    """Load the recipient from Postgres and publish it (`Recipients.load`), for the next
    run; refuse an unknown one here (a frozen one is refused by the next run)."""
    recipient = await recipients.load(
        tenant_id=principal.tenant_id,
        region=principal.compliance_region,
        recipient_id=recipient_id,
        use_cache=False,
    )
    if recipient is None:
        raise RecipientUnknown(f"no recipient {encode_id('rcp', recipient_id)}")


async def _usd_at_current_rates(dependencies: AdmissionDependencies, quote: LockedQuote) -> int:
    """A quote whose USD equivalent the admission script could not count (stored before
    quotes recorded it, or too large to), valued now. A missing or stale rate is the API's
    `rate_unavailable` or `rate_stale`, and a value past any daily count
    `daily_limit_exceeded`, raised before anything is counted."""
    rates = await dependencies.rates.snapshot()
    usd_minor = usd_equivalent_minor(
        amount_minor=quote.source_amount + quote.fee_amount,
        currency=dependencies.currencies.get(quote.source_currency),
        to_usd_mid=mid_rate(rates, quote.source_currency, "USD").rate,
    )
    ensure(usd_minor >= 1, "a payout counts a positive amount")
    if usd_minor > usd_minor_max:
        # More than a daily count can hold is over any daily limit (at most 10**15 cents):
        # the quote's own equivalent was too large to lock, which is why it is valued here.
        raise DailyLimitExceeded("this payout alone exceeds the daily limit")
    return usd_minor


def _mismatch(quote: LockedQuote, recipient: RecipientRecord) -> RecipientCurrencyMismatch:
    return RecipientCurrencyMismatch(
        f"the quote pays {quote.target_currency}; the recipient is paid in {recipient.currency}"
    )
