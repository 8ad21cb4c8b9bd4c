"""Daily volume limits and velocity counters per tenant, in Redis, atomic across processes.

Each payout adds its USD equivalent to the tenant's counter for the UTC day; one script
checks the tier's daily limit and adds in one step, so two workers can never both squeeze
under the limit. The same script counts payouts per hour for the risk score's velocity.
A payout that is refused later (no funds, blocked) gives its volume back.
"""

from __future__ import annotations

import datetime

import msgspec
from redis.asyncio import Redis

from ledger.errors import LedgerError
from ledger.invariants import ensure

counter_ttl_seconds = 2 * 86_400
# Redis Lua numbers are doubles: amounts stay below 2**53 so every comparison is exact.
usd_minor_max = 2**53 - 1


class DailyLimitExceeded(LedgerError):
    code = "daily_limit_exceeded"


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    """What one admitted payout counted: its own amount and moment (so giving it back
    touches the same day and hour), and the totals after it."""

    usd_minor: int
    counted_at: datetime.datetime
    day_usd_minor: int
    payouts_last_hour: int


# KEYS: day counter, hour counter. ARGV: amount, limit, ttl.
_consume = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local amount = tonumber(ARGV[1])
if used + amount > tonumber(ARGV[2]) then return {0, used, 0} end
used = redis.call('INCRBY', KEYS[1], amount)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
local hour = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
return {1, used, hour}
"""
# KEYS: day counter, hour counter (of the moment the payout was counted). ARGV: amount.
# A counter that has expired is left alone rather than recreated below zero.
_give_back = """
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

    def _keys(self, tenant_id: int, now: datetime.datetime) -> list[str]:
        day = now.strftime("%Y%m%d")
        hour = now.strftime("%Y%m%d%H")
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
        now: datetime.datetime | None = None,
    ) -> Usage:
        """Count the payout against today's limit, or refuse it without counting."""
        ensure(1 <= usd_minor <= usd_minor_max, "a payout counts a positive, bounded amount")
        moment = now or datetime.datetime.now(tz=datetime.UTC)
        reply = await self._consume(
            keys=self._keys(tenant_id, moment),
            args=[usd_minor, daily_limit_usd_minor, counter_ttl_seconds],
        )
        if int(reply[0]) == 0:
            raise DailyLimitExceeded(
                f"today's volume would exceed the daily limit of {daily_limit_usd_minor} USD "
                f"minor units (used: {int(reply[1])})"
            )
        return Usage(
            usd_minor=usd_minor,
            counted_at=moment,
            day_usd_minor=int(reply[1]),
            payouts_last_hour=int(reply[2]),
        )

    async def give_back(self, *, tenant_id: int, usage: Usage) -> None:
        """Return a refused payout's volume and count to the day and hour it was counted in,
        even when the refusal comes after midnight."""
        await self._give_back(keys=self._keys(tenant_id, usage.counted_at), args=[usage.usd_minor])

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
