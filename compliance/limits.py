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

from ledger.errors import DomainError
from ledger.invariants import ensure, unreachable

counter_ttl_seconds = 2 * 86_400
# Redis Lua numbers are doubles: amounts stay below 2**53 so every comparison is exact.
usd_minor_max = 2**53 - 1
# A batch's count marker holds one flag per item; no batch has more items than this
# (`gateway.batches.wire.batch_items_max`, which this module does not import).
batch_items_counted_max = 10_000


class DailyLimitExceeded(DomainError):
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
# A batch admits its payouts in order, each while it still fits under the limit, and
# remembers under its marker (a field of a hash that lives as long as the counters) what it
# decided for each item, so that a retry of the same batch (same id, after a crash or a lost
# response) decides alike and counts nothing twice. The marker reads
# `moment_ms:total:count:flags`, one flag per item index: '1' counted, '0' refused at the
# limit, '-' never asked or given back. A retry asks again only for the '-' items.
# KEYS: day counter, hour counter, marker hash. ARGV: limit, ttl, now (ms), marker field,
# and the payouts as `index:amount` joined by commas (indexes from 1; one argument, since
# ten thousand arguments cost redis-py and Redis more than one string of them).
# Returns {day total, hour count, then per payout 0 refused, 1 counted now, 2 counted
# before} and, last, the moment (ms) the batch was first counted.
_consume_many = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local limit = tonumber(ARGV[1])
local moment, total, count, flags = ARGV[3], 0, 0, {}
local marked = redis.call('HGET', KEYS[3], ARGV[4])
if marked then
  local m, t, c, f = string.match(marked, '^(%d+):(%d+):(%d+):([-01]*)$')
  moment, total, count = m, tonumber(t), tonumber(c)
  for i = 1, #f do flags[i] = string.sub(f, i, i) end
end
local fresh_total, fresh_count, replies = 0, 0, {}
for i, a in string.gmatch(ARGV[5], '(%d+):(%d+)') do
  local index, amount = tonumber(i), tonumber(a)
  for j = #flags + 1, index do flags[j] = '-' end
  local flag = flags[index]
  if flag == '1' then
    replies[#replies + 1] = 2
  elseif flag == '0' then
    replies[#replies + 1] = 0
  elseif used + fresh_total + amount <= limit then
    fresh_total, fresh_count = fresh_total + amount, fresh_count + 1
    flags[index] = '1'
    replies[#replies + 1] = 1
  else
    flags[index] = '0'
    replies[#replies + 1] = 0
  end
end
if fresh_count > 0 then
  used = redis.call('INCRBY', KEYS[1], fresh_total)
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
end
local hour = redis.call('INCRBY', KEYS[2], fresh_count)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[2]))
redis.call('HSET', KEYS[3], ARGV[4], moment .. ':' .. (total + fresh_total) .. ':' ..
  (count + fresh_count) .. ':' .. table.concat(flags))
if redis.call('TTL', KEYS[3]) < 0 then redis.call('EXPIRE', KEYS[3], tonumber(ARGV[2])) end
local reply = {used, hour}
for i = 1, #replies do reply[#reply + 1] = replies[i] end
reply[#reply + 1] = moment
return reply
"""
# Give back the items named (an index and its amount each) that the batch's marker still
# holds as counted, and mark them '-'; an item given back already, or never counted, gives
# back nothing. The marker is cleared when its last counted item goes back.
# KEYS: day counter, hour counter (of the moment the items were counted), marker hash.
# ARGV: marker field, and the payouts as `index:amount` joined by commas.
# Returns {amount given back, payouts given back}.
_give_back_many = """
local marked = redis.call('HGET', KEYS[3], ARGV[1])
if not marked then return {0, 0} end
local moment, total, count, f = string.match(marked, '^(%d+):(%d+):(%d+):([-01]*)$')
local flags = {}
for i = 1, #f do flags[i] = string.sub(f, i, i) end
local given_total, given_count = 0, 0
for i, a in string.gmatch(ARGV[2], '(%d+):(%d+)') do
  local index = tonumber(i)
  if flags[index] == '1' then
    flags[index] = '-'
    given_total, given_count = given_total + tonumber(a), given_count + 1
  end
end
-- Nothing given back changes nothing: a marker that counts nothing still remembers refusals.
if given_count == 0 then return {0, 0} end
total, count = tonumber(total) - given_total, tonumber(count) - given_count
if total < 0 or count < 0 then
  return redis.error_reply('a batch gave back more than it counted')
end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('DECRBY', KEYS[1], given_total) end
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('DECRBY', KEYS[2], given_count) end
if count == 0 then
  redis.call('HDEL', KEYS[3], ARGV[1])
else
  redis.call('HSET', KEYS[3], ARGV[1], moment .. ':' .. total .. ':' .. count .. ':' ..
    table.concat(flags))
end
return {given_total, given_count}
"""
# Give back everything a batch's marker still holds, if it still reads as the caller read it
# (ARGV[2]); for the repair, which knows the batch but not its items' usage.
# KEYS: day counter, hour counter (of the marker's moment), marker hash.
# ARGV: marker field, the marker's value. Returns the payouts given back.
_give_back_marked_batch = """
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then return 0 end
local _, total, count = string.match(ARGV[2], '^(%d+):(%d+):(%d+):')
redis.call('HDEL', KEYS[3], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('DECRBY', KEYS[1], tonumber(total)) end
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('DECRBY', KEYS[2], tonumber(count)) end
return tonumber(count)
"""


class DailyLimits:
    def __init__(self, redis: Redis, *, namespace: str = "kovra") -> None:
        self._redis = redis
        self._namespace = namespace
        self._consume = redis.register_script(_consume)
        self._give_back = redis.register_script(_give_back)
        self._consume_many = redis.register_script(_consume_many)
        self._give_back_many = redis.register_script(_give_back_many)
        self._give_back_marked_batch = redis.register_script(_give_back_marked_batch)

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

    def batch_marker(self, *, tenant_id: int, batch_id: int) -> CountOnce:
        """Where a batch remembers what it counted: every attempt of the batch (its id
        derives from the Idempotency-Key) names the same marker."""
        return CountOnce(
            key=f"{self._namespace}:batch-count:{tenant_id}:{batch_id:032x}", field="counted"
        )

    async def consume_many(
        self,
        *,
        tenant_id: int,
        usd_minor: dict[int, int],
        daily_limit_usd_minor: int,
        once: CountOnce,
        now: datetime.datetime | None = None,
    ) -> list[Usage | None]:
        """Count a batch's payouts (`usd_minor`: item index to amount) in one step, in
        order: each one that still fits under today's limit is counted (its `Usage`), the
        others are refused (None). Under `once`, an item an earlier attempt of the batch
        decided keeps that decision: counted before (its `Usage` at the first count's
        moment, counting nothing now) or refused again."""
        ensure(
            all(1 <= amount <= usd_minor_max for amount in usd_minor.values()),
            "a payout counts a positive, bounded amount",
        )
        ensure(
            all(0 <= index < batch_items_counted_max for index in usd_minor),
            "a batch item's index is within the largest batch",
        )
        if not usd_minor:
            return []
        moment = now or datetime.datetime.now(tz=datetime.UTC)
        payouts = ",".join(f"{index + 1}:{amount}" for index, amount in usd_minor.items())
        reply = await self._consume_many(
            keys=[*self._keys(tenant_id, moment), once.key],
            args=[
                daily_limit_usd_minor,
                counter_ttl_seconds,
                milliseconds(moment),
                once.field,
                payouts,
            ],
        )
        ensure(len(reply) == 3 + len(usd_minor), "one admission flag per payout")
        day_total, hour_count = int(reply[0]), int(reply[1])
        first_counted_at = datetime.datetime.fromtimestamp(int(reply[-1]) / 1000, tz=datetime.UTC)
        usages: list[Usage | None] = []
        for amount, flag in zip(usd_minor.values(), reply[2:-1], strict=True):
            match int(flag):
                case 0:
                    usages.append(None)
                case 1 | 2 as counted:
                    usages.append(
                        Usage(
                            usd_minor=amount,
                            counted_at=moment if counted == 1 else first_counted_at,
                            day_usd_minor=day_total,
                            payouts_last_hour=hour_count,
                        )
                    )
                case other:
                    unreachable(f"the batch count script replied {other} for an item")
        return usages

    async def give_back_many(
        self, *, tenant_id: int, usages: dict[int, Usage], once: CountOnce
    ) -> None:
        """Return the volume and count of a batch's refused payouts (item index to its
        `Usage`), per day and hour they counted in; only those `once` still holds as
        counted, so giving an item back twice gives it back once."""
        groups: dict[datetime.datetime, list[str]] = {}
        for index, usage in usages.items():
            groups.setdefault(usage.counted_at, []).append(f"{index + 1}:{usage.usd_minor}")
        for counted_at, payouts in groups.items():
            await self._give_back_many(
                keys=[*self._keys(tenant_id, counted_at), once.key],
                args=[once.field, ",".join(payouts)],
            )

    async def give_back_marked_batch(self, *, tenant_id: int, once: CountOnce) -> int:
        """Return everything a batch's marker still holds as counted, to the day and hour of
        its first count, and clear it; how many payouts that was (0 if none). For the
        repair, which knows the batch but not its items' usage. (Items a retry counted on a
        later day go back to the first day too: a batch retried across midnight is rare,
        and the day it undercounts has passed.)"""
        counted: bytes | str | None = await self._redis.hget(once.key, once.field)
        if counted is None:
            return 0
        text = counted.decode() if isinstance(counted, bytes) else counted
        moment_ms, _, _ = text.partition(":")
        ensure(moment_ms.isdigit(), f"a batch's count marker starts with ms, not {text!r}")
        moment = datetime.datetime.fromtimestamp(int(moment_ms) / 1000, tz=datetime.UTC)
        keys = [*self._keys(tenant_id, moment), once.key]
        return int(await self._give_back_marked_batch(keys=keys, args=[once.field, text]))


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
