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


class DailyLimits:
    def __init__(self, redis: Redis, *, namespace: str = "kovra") -> None:
        self._redis = redis
        self._namespace = namespace
        self._consume = redis.register_script(_consume)
        self._give_back = redis.register_script(_give_back)

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
