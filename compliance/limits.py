"""Daily volume limits and velocity counters per tenant, in Redis, atomic across processes.

Each payout adds its USD equivalent to the tenant's counter for the UTC day; one script
checks the tier's daily limit and adds in one step, so two workers can never both squeeze
under the limit. The same script counts payouts per hour for the risk score's velocity.
A payout that is refused later (no funds, blocked) gives its volume back.

A payout retried after a failure between counting it and recording it (Postgres gone for a
moment, a worker killed) is counted once: the caller names a `CountOnce` marker, a field in a
Redis hash that lives as long as a retry can come (for a transfer, its quote's record). The
first count writes the amount and moment there; a retry finds it and counts nothing, and a
give-back clears it, so the retry after a refusal counts again.
"""

from __future__ import annotations

import datetime
from typing import Any

import msgspec
from redis.asyncio import Redis

from ledger.errors import LedgerError
from ledger.invariants import ensure, unreachable

counter_ttl_seconds = 2 * 86_400
# Redis Lua numbers are doubles: amounts stay below 2**53 so every comparison is exact.
usd_minor_max = 2**53 - 1


class DailyLimitExceeded(LedgerError):
    code = "daily_limit_exceeded"


class CountOnce(msgspec.Struct, frozen=True, kw_only=True):
    """Where a payout's count is remembered: `field` of the Redis hash `key`."""

    key: str
    field: str


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    """What one admitted payout counted: its own amount and moment (so giving it back
    touches the same day and hour), and the totals after it."""

    usd_minor: int
    counted_at: datetime.datetime
    day_usd_minor: int
    payouts_last_hour: int


# Count `amount` (a string of digits) against the day's `limit` at `now_ms`, the counters
# expiring after `ttl` seconds; with a marker (`marker_key`, `marker_field`, or nil), not
# if the marker holds a count already. Returns {0, day total} refused, {1, day total, hour
# count} counted, or {2, day total, hour count, amount, moment (ms)} counted before under
# the marker. A Lua function, so the scripts that count a payout together with other
# records (gateway.transfers.admission) count alike.
count_lua = """
local function count(day_key, hour_key, marker_key, marker_field, amount, limit, ttl, now_ms)
  if marker_key then
    local counted = redis.call('HGET', marker_key, marker_field)
    if counted then
      local counted_amount, moment = string.match(counted, '^(%d+):(%d+)$')
      return {2, tonumber(redis.call('GET', day_key) or '0'),
        tonumber(redis.call('GET', hour_key) or '0'), counted_amount, moment}
    end
  end
  local used = tonumber(redis.call('GET', day_key) or '0')
  if used + tonumber(amount) > tonumber(limit) then return {0, used} end
  used = redis.call('INCRBY', day_key, amount)
  redis.call('EXPIRE', day_key, tonumber(ttl))
  local hour = redis.call('INCR', hour_key)
  redis.call('EXPIRE', hour_key, tonumber(ttl))
  if marker_key then
    redis.call('HSET', marker_key, marker_field, amount .. ':' .. now_ms)
    -- The marker's hash normally exists with its own lifetime; one made here must expire.
    if redis.call('TTL', marker_key) < 0 then redis.call('EXPIRE', marker_key, tonumber(ttl)) end
  end
  return {1, used, hour}
end
"""
# KEYS: day counter, hour counter, and the count-once hash if any.
# ARGV: amount, limit, ttl, now (ms), and the count-once field if any.
_consume = (
    count_lua
    + """
return count(KEYS[1], KEYS[2], KEYS[3], ARGV[5], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
"""
)
# KEYS: day counter, hour counter (of the moment the payout was counted), and the
# count-once hash if any. ARGV: amount, and the count-once field if any.
# A counter that has expired is left alone rather than recreated below zero; with a marker,
# only a count the marker still holds is given back, so giving back twice gives back once.
_give_back = """
if KEYS[3] and redis.call('HDEL', KEYS[3], ARGV[2]) == 0 then return 0 end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('DECRBY', KEYS[1], tonumber(ARGV[1])) end
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('DECR', KEYS[2]) end
return 1
"""
# A batch admits its payouts in order, each while it still fits under the limit.
# KEYS: day counter, hour counter. ARGV: limit, ttl, then one amount per payout.
# Returns {day total, hour count, admitted flag per payout}.
_consume_many = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local limit = tonumber(ARGV[1])
local admitted_total, admitted_count, flags = 0, 0, {}
for i = 3, #ARGV do
  local amount = tonumber(ARGV[i])
  if used + admitted_total + amount <= limit then
    admitted_total = admitted_total + amount
    admitted_count = admitted_count + 1
    flags[#flags + 1] = 1
  else
    flags[#flags + 1] = 0
  end
end
if admitted_count > 0 then
  used = redis.call('INCRBY', KEYS[1], admitted_total)
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
end
local hour = redis.call('INCRBY', KEYS[2], admitted_count)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[2]))
local reply = {used, hour}
for i = 1, #flags do reply[#reply + 1] = flags[i] end
return reply
"""
# KEYS: day counter, hour counter. ARGV: amount, count.
_give_back_many = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('DECRBY', KEYS[1], tonumber(ARGV[1])) end
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('DECRBY', KEYS[2], tonumber(ARGV[2])) end
return 1
"""


class DailyLimits:
    def __init__(self, redis: Redis, *, namespace: str = "kovra") -> None:
        self._redis = redis
        self._namespace = namespace
        self._consume = redis.register_script(_consume)
        self._give_back = redis.register_script(_give_back)
        self._consume_many = redis.register_script(_consume_many)
        self._give_back_many = redis.register_script(_give_back_many)

    def counter_keys(self, *, tenant_id: int, moment: datetime.datetime) -> list[str]:
        """The day and hour counters `moment` counts in (the keys of `count_lua`)."""
        return self._keys(tenant_id, moment)

    def _keys(self, tenant_id: int, now: datetime.datetime) -> list[str]:
        # Formatted by hand: `strftime` costs three times as much, twice per payout.
        day = f"{now.year}{now.month:02d}{now.day:02d}"
        hour = f"{day}{now.hour:02d}"
        return [
            f"{self._namespace}:limit:day:{tenant_id}:{day}",
            f"{self._namespace}:limit:hour:{tenant_id}:{hour}",
        ]

    async def consume(
        self,
        *,
        tenant_id: int,
        usd_minor: int,
        daily_limit_usd_minor: int,
        once: CountOnce | None = None,
        now: datetime.datetime | None = None,
    ) -> Usage:
        """Count the payout against today's limit, or refuse it without counting. With
        `once`, a payout already counted under that marker is not counted again: its
        `Usage` is the first count's (amount and moment), with today's totals. (A single
        transfer counts with the same `count_lua` inside its admission script,
        `gateway.transfers.admission`, together with its quote and recipient.)"""
        ensure(1 <= usd_minor <= usd_minor_max, "a payout counts a positive, bounded amount")
        moment = now or datetime.datetime.now(tz=datetime.UTC)
        keys = self._keys(tenant_id, moment)
        args: list[int | str] = [
            usd_minor,
            daily_limit_usd_minor,
            counter_ttl_seconds,
            milliseconds(moment),
        ]
        if once is not None:
            keys.append(once.key)
            args.append(once.field)
        reply = await self._consume(keys=keys, args=args)
        return usage_of(
            reply, usd_minor=usd_minor, moment=moment, daily_limit_usd_minor=daily_limit_usd_minor
        )

    async def give_back(
        self, *, tenant_id: int, usage: Usage, once: CountOnce | None = None
    ) -> None:
        """Return a refused payout's volume and count to the day and hour it was counted in,
        even when the refusal comes after midnight. With `once`, only if that marker still
        holds the count, and the marker is cleared."""
        keys = self._keys(tenant_id, usage.counted_at)
        args: list[int | str] = [usage.usd_minor]
        if once is not None:
            keys.append(once.key)
            args.append(once.field)
        await self._give_back(keys=keys, args=args)

    async def give_back_marked(self, *, tenant_id: int, once: CountOnce) -> bool:
        """Return the count that `once` remembers, to the day and hour it was counted in,
        and clear the marker; False if it holds none (never counted, or given back).
        For the reconciler, which knows the marker but not the payout's `Usage`."""
        counted: bytes | str | None = await self._redis.hget(once.key, once.field)
        if counted is None:
            return False
        text = counted.decode() if isinstance(counted, bytes) else counted
        amount, separator, moment_ms = text.partition(":")
        ensure(
            separator == ":" and amount.isdigit() and moment_ms.isdigit(),
            f"a count-once marker reads amount:ms, not {text!r}",
        )
        moment = datetime.datetime.fromtimestamp(int(moment_ms) / 1000, tz=datetime.UTC)
        keys = [*self._keys(tenant_id, moment), once.key]
        return bool(await self._give_back(keys=keys, args=[int(amount), once.field]))

    async def consume_many(
        self,
        *,
        tenant_id: int,
        usd_minor: list[int],
        daily_limit_usd_minor: int,
        now: datetime.datetime | None = None,
    ) -> list[Usage | None]:
        """Count a batch's payouts in one step, in order: each one that still fits under
        today's limit is counted (its `Usage`), the others are refused (None)."""
        ensure(
            all(1 <= amount <= usd_minor_max for amount in usd_minor),
            "a payout counts a positive, bounded amount",
        )
        if not usd_minor:
            return []
        moment = now or datetime.datetime.now(tz=datetime.UTC)
        reply = await self._consume_many(
            keys=self._keys(tenant_id, moment),
            args=[daily_limit_usd_minor, counter_ttl_seconds, *usd_minor],
        )
        day_total, hour_count = int(reply[0]), int(reply[1])
        ensure(len(reply) == 2 + len(usd_minor), "one admission flag per payout")
        return [
            Usage(
                usd_minor=amount,
                counted_at=moment,
                day_usd_minor=day_total,
                payouts_last_hour=hour_count,
            )
            if int(flag) == 1
            else None
            for amount, flag in zip(usd_minor, reply[2:], strict=True)
        ]

    async def give_back_many(self, *, tenant_id: int, usages: list[Usage]) -> None:
        """Return the volume and count of refused payouts, per day and hour they counted in."""
        groups: dict[tuple[str, ...], tuple[int, int]] = {}
        for usage in usages:
            keys = tuple(self._keys(tenant_id, usage.counted_at))
            amount, count = groups.get(keys, (0, 0))
            groups[keys] = (amount + usage.usd_minor, count + 1)
        for keys, (amount, count) in groups.items():
            await self._give_back_many(keys=list(keys), args=[amount, count])


def usage_of(
    reply: list[Any], *, usd_minor: int, moment: datetime.datetime, daily_limit_usd_minor: int
) -> Usage:
    """What a `count` of `usd_minor` at `moment` counted (its reply), or the refusal."""
    match int(reply[0]):
        case 0:  # count_refused
            raise DailyLimitExceeded(
                f"today's volume would exceed the daily limit of {daily_limit_usd_minor} "
                f"USD minor units (used: {int(reply[1])})"
            )
        case 1:  # count_counted
            counted_usd_minor, counted_at = usd_minor, moment
        case 2:  # count_counted_before
            counted_usd_minor = int(reply[3])
            counted_at = datetime.datetime.fromtimestamp(int(reply[4]) / 1000, tz=datetime.UTC)
        case other:
            unreachable(f"the daily limit script replied {other}")
    return Usage(
        usd_minor=counted_usd_minor,
        counted_at=counted_at,
        day_usd_minor=int(reply[1]),
        payouts_last_hour=int(reply[2]),
    )


def milliseconds(moment: datetime.datetime) -> int:
    """`moment` as Unix milliseconds, the clock of the scripts here."""
    return int(moment.timestamp() * 1000)
