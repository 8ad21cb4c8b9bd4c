"""Daily limits count volume atomically in the real local Redis, and refuse without counting.

Against the tests' real Redis (no mocks), each test in its own key namespace (deleted
after): usage accumulates per tenant and UTC day, and payouts per hour; counters expire; a
payout that would exceed the daily limit raises `DailyLimitExceeded` (code
`daily_limit_exceeded`) and counts neither volume nor velocity, while one reaching the limit
exactly is admitted; `give_back` returns volume and velocity so a refused payout's headroom
can be used again; tenants and days are separate. Under concurrency, 50 consume calls from
several Redis clients, and from 4 OS processes with their own clients, against a limit that
admits exactly N of them, admit exactly N and the counter ends at exactly the limit; with
mixed amounts the admitted total never exceeds the limit and every refusal was a real one. A
give-back after midnight returns the volume to the day it was counted in, and never creates
counters below zero or without an expiry. Under a `CountOnce` marker a payout is counted
once however often it is retried (even on a full day), a give-back returns it once and
clears the marker so the next payment counts again, and a marker whose hash is gone still
expires. The counter keys name the UTC day and hour exactly as `strftime` would.

A batch counts its items in order under its own marker: a retry of the batch decides each
item as the first attempt did and counts nothing again (items the first attempt never asked
about are asked now), a give-back returns each item once, the repair returns what the marker
still holds from the marker alone, and a give-back of items never counted keeps the
batch's refusals.

Against an independent model (`tests.compliance.limits_model`, written from the rules, not
from the answers): hypothesis draws payouts in currencies with 0 to 4 decimals at realistic
rates (counted in their USD equivalent), for two tenants over three UTC days, with and without
count-once markers, give-backs of any of them, and each tenant's limit often exactly what
some payouts add up to; and, for a batch, attempts, give-backs and repairs in any order at
any moments. Every admission or refusal, the amount and moment counted, the day's volume and
the hour's payouts answered, and every counter in Redis must be the model's.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import multiprocessing
import random
import secrets
from collections.abc import AsyncIterator
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from compliance.limits import (
    CountOnce,
    DailyLimitExceeded,
    DailyLimits,
    Usage,
    counter_ttl_seconds,
)
from fx.pricing import usd_equivalent_minor
from ledger.errors import DomainError
from ledger.invariants import InvariantViolation
from tests.compliance.limits_model import Counted, LimitsModel, usd_cents
from tests.conftest import redis_url
from tests.fx.markets import codes, drift_per_mille, markets, mid_rate
from tests.fx.markets import registry as markets_registry

noon = datetime.datetime(2026, 3, 10, 12, 0, tzinfo=datetime.UTC)
tenant = 4242
concurrent_calls = 50
admitted = 37
amount = 1_000


class Payment(NamedTuple):
    tenant: int
    currency: str
    amount_minor: int
    drift: int
    moment: datetime.datetime
    marker: str | None


def day_key(namespace: str, tenant_id: int, moment: datetime.datetime) -> str:
    return f"{namespace}:limit:day:{tenant_id}:{moment:%Y%m%d}"


def hour_key(namespace: str, tenant_id: int, moment: datetime.datetime) -> str:
    return f"{namespace}:limit:hour:{tenant_id}:{moment:%Y%m%d%H}"


def totals(usage: Usage) -> tuple[int, int]:
    return (usage.day_usd_minor, usage.payouts_last_hour)


async def counter(redis: Redis, key: str) -> int | None:
    value = await redis.get(key)
    return None if value is None else int(value)


async def test_usage_accumulates_per_day_and_hour(redis_client: Redis, namespace: str) -> None:
    limits = DailyLimits(redis_client, namespace=namespace)
    first = await limits.consume(
        tenant_id=tenant, usd_minor=1_500, daily_limit_usd_minor=10_000, now=noon
    )
    second = await limits.consume(
        tenant_id=tenant,
        usd_minor=2_500,
        daily_limit_usd_minor=10_000,
        now=noon + datetime.timedelta(minutes=30),
    )
    next_hour = noon + datetime.timedelta(hours=1)
    third = await limits.consume(
        tenant_id=tenant, usd_minor=1_000, daily_limit_usd_minor=10_000, now=next_hour
    )
    assert totals(first) == (1_500, 1)
    assert totals(second) == (4_000, 2)
    assert totals(third) == (5_000, 1)  # A new hour.
    assert await counter(redis_client, day_key(namespace, tenant, noon)) == 5_000
    assert await counter(redis_client, hour_key(namespace, tenant, noon)) == 2
    assert await counter(redis_client, hour_key(namespace, tenant, next_hour)) == 1


async def test_counters_expire(redis_client: Redis, namespace: str) -> None:
    limits = DailyLimits(redis_client, namespace=namespace)
    await limits.consume(tenant_id=tenant, usd_minor=1, daily_limit_usd_minor=10, now=noon)
    for key in (day_key(namespace, tenant, noon), hour_key(namespace, tenant, noon)):
        assert 0 < await redis_client.ttl(key) <= counter_ttl_seconds


async def test_tenants_and_days_are_counted_apart(redis_client: Redis, namespace: str) -> None:
    limits = DailyLimits(redis_client, namespace=namespace)
    await limits.consume(tenant_id=tenant, usd_minor=900, daily_limit_usd_minor=1_000, now=noon)
    other = await limits.consume(
        tenant_id=tenant + 1, usd_minor=900, daily_limit_usd_minor=1_000, now=noon
    )
    tomorrow = await limits.consume(
        tenant_id=tenant,
        usd_minor=900,
        daily_limit_usd_minor=1_000,
        now=noon + datetime.timedelta(days=1),
    )
    assert other.day_usd_minor == 900
    assert tomorrow.day_usd_minor == 900


async def test_the_default_clock_counts_today(redis_client: Redis, namespace: str) -> None:
    limits = DailyLimits(redis_client, namespace=namespace)
    before = datetime.datetime.now(tz=datetime.UTC)
    usage = await limits.consume(tenant_id=tenant, usd_minor=321, daily_limit_usd_minor=1_000)
    after = datetime.datetime.now(tz=datetime.UTC)
    assert totals(usage) == (321, 1)
    days = {day_key(namespace, tenant, before), day_key(namespace, tenant, after)}
    assert [await counter(redis_client, key) for key in days].count(321) == 1


async def test_a_payout_over_the_limit_is_refused_and_counts_nothing(
    redis_client: Redis, namespace: str
) -> None:
    limits = DailyLimits(redis_client, namespace=namespace)
    await limits.consume(tenant_id=tenant, usd_minor=7_000, daily_limit_usd_minor=10_000, now=noon)
    with pytest.raises(DailyLimitExceeded) as refused:
        await limits.consume(
            tenant_id=tenant, usd_minor=3_001, daily_limit_usd_minor=10_000, now=noon
        )
    assert refused.value.code == "daily_limit_exceeded"
    assert isinstance(refused.value, DomainError)
    assert "10000" in refused.value.detail
    assert "used: 7000" in refused.value.detail
    assert await counter(redis_client, day_key(namespace, tenant, noon)) == 7_000
    assert await counter(redis_client, hour_key(namespace, tenant, noon)) == 1
    exact = await limits.consume(
        tenant_id=tenant, usd_minor=3_000, daily_limit_usd_minor=10_000, now=noon
    )
    assert totals(exact) == (10_000, 2)


async def test_a_single_payout_above_the_limit_creates_no_counters(
    redis_client: Redis, namespace: str
) -> None:
    limits = DailyLimits(redis_client, namespace=namespace)
    with pytest.raises(DailyLimitExceeded):
        await limits.consume(tenant_id=tenant, usd_minor=1_001, daily_limit_usd_minor=1_000)
    assert [key async for key in redis_client.scan_iter(match=f"{namespace}:*")] == []


async def test_give_back_returns_volume_and_velocity(redis_client: Redis, namespace: str) -> None:
    limits = DailyLimits(redis_client, namespace=namespace)
    await limits.consume(tenant_id=tenant, usd_minor=6_000, daily_limit_usd_minor=10_000, now=noon)
    second = await limits.consume(
        tenant_id=tenant, usd_minor=4_000, daily_limit_usd_minor=10_000, now=noon
    )
    assert (second.usd_minor, second.counted_at) == (4_000, noon)
    with pytest.raises(DailyLimitExceeded):
        await limits.consume(tenant_id=tenant, usd_minor=1, daily_limit_usd_minor=10_000, now=noon)
    await limits.give_back(tenant_id=tenant, usage=second)
    assert await counter(redis_client, day_key(namespace, tenant, noon)) == 6_000
    assert await counter(redis_client, hour_key(namespace, tenant, noon)) == 1
    again = await limits.consume(
        tenant_id=tenant, usd_minor=4_000, daily_limit_usd_minor=10_000, now=noon
    )
    assert totals(again) == (10_000, 2)


async def test_give_back_after_midnight_returns_the_volume_to_its_own_day(
    redis_client: Redis, namespace: str
) -> None:
    limits = DailyLimits(redis_client, namespace=namespace)
    late = datetime.datetime(2026, 3, 10, 23, 59, 59, tzinfo=datetime.UTC)
    after_midnight = late + datetime.timedelta(seconds=2)
    usage = await limits.consume(
        tenant_id=tenant, usd_minor=500, daily_limit_usd_minor=1_000, now=late
    )
    await limits.give_back(tenant_id=tenant, usage=usage)
    assert await counter(redis_client, day_key(namespace, tenant, late)) == 0
    assert await counter(redis_client, day_key(namespace, tenant, after_midnight)) is None
    for key in [key async for key in redis_client.scan_iter(match=f"{namespace}:*")]:
        assert await redis_client.ttl(key) > 0, f"{key!r} never expires"
    with pytest.raises(DailyLimitExceeded):
        await limits.consume(
            tenant_id=tenant, usd_minor=1_500, daily_limit_usd_minor=1_000, now=after_midnight
        )


async def test_giving_back_to_an_expired_counter_creates_nothing(
    redis_client: Redis, namespace: str
) -> None:
    limits = DailyLimits(redis_client, namespace=namespace)
    usage = await limits.consume(
        tenant_id=tenant, usd_minor=700, daily_limit_usd_minor=1_000, now=noon
    )
    await redis_client.delete(day_key(namespace, tenant, noon), hour_key(namespace, tenant, noon))
    await limits.give_back(tenant_id=tenant, usage=usage)
    assert [key async for key in redis_client.scan_iter(match=f"{namespace}:*")] == []


@pytest.mark.parametrize("usd_minor", [0, -1, 2**53])
async def test_a_payout_counts_a_positive_bounded_amount(
    redis_client: Redis, namespace: str, usd_minor: int
) -> None:
    limits = DailyLimits(redis_client, namespace=namespace)
    with pytest.raises(InvariantViolation):
        await limits.consume(
            tenant_id=tenant, usd_minor=usd_minor, daily_limit_usd_minor=2**62, now=noon
        )
    assert [key async for key in redis_client.scan_iter(match=f"{namespace}:*")] == []


async def _consume_or_refuse(limits: DailyLimits, usd_minor: int, limit: int) -> Usage | None:
    try:
        return await limits.consume(
            tenant_id=tenant, usd_minor=usd_minor, daily_limit_usd_minor=limit, now=noon
        )
    except DailyLimitExceeded:
        return None


async def test_concurrent_calls_from_several_clients_admit_exactly_what_fits(
    redis_client: Redis, namespace: str
) -> None:
    clients = [Redis.from_url(redis_url) for _ in range(5)]
    try:
        every = [DailyLimits(client, namespace=namespace) for client in clients]
        results = await asyncio.gather(
            *(
                _consume_or_refuse(every[call % len(every)], amount, admitted * amount)
                for call in range(concurrent_calls)
            )
        )
    finally:
        for client in clients:
            await client.aclose()
    usages = [usage for usage in results if usage is not None]
    assert len(usages) == admitted
    # Each admitted call saw its own step of the counters: no two squeezed in together.
    assert sorted(usage.day_usd_minor for usage in usages) == [
        amount * step for step in range(1, admitted + 1)
    ]
    assert sorted(usage.payouts_last_hour for usage in usages) == list(range(1, admitted + 1))
    assert await counter(redis_client, day_key(namespace, tenant, noon)) == admitted * amount
    assert await counter(redis_client, hour_key(namespace, tenant, noon)) == admitted


async def test_concurrent_mixed_amounts_never_exceed_the_limit(
    redis_client: Redis, namespace: str
) -> None:
    draw = random.Random(20_260_310)
    amounts = [draw.randint(100, 5_000) for _ in range(concurrent_calls)]
    limit = sum(amounts) // 2
    clients = [Redis.from_url(redis_url) for _ in range(4)]
    try:
        every = [DailyLimits(client, namespace=namespace) for client in clients]
        results = await asyncio.gather(
            *(
                _consume_or_refuse(every[call % len(every)], usd, limit)
                for call, usd in enumerate(amounts)
            )
        )
    finally:
        for client in clients:
            await client.aclose()
    admitted_total = sum(usd for usd, usage in zip(amounts, results, strict=True) if usage)
    final = await counter(redis_client, day_key(namespace, tenant, noon))
    assert final == admitted_total <= limit
    refused = [usd for usd, usage in zip(amounts, results, strict=True) if usage is None]
    assert refused  # The limit admits only about half.
    # The counter only grows, so a refusal is real only if it would not fit even now.
    assert all(final + usd > limit for usd in refused)


def _consume_in_process(
    namespace: str, calls: int, clients: int, barrier: Barrier, results: Queue[tuple[int, int]]
) -> None:
    """One OS process: `calls` consume calls spread over `clients` clients, all at once."""

    async def run() -> tuple[int, int]:
        connections = [Redis.from_url(redis_url) for _ in range(clients)]
        try:
            for connection in connections:
                await connection.ping()
            every = [DailyLimits(connection, namespace=namespace) for connection in connections]
            await asyncio.to_thread(barrier.wait, 30)
            outcomes = await asyncio.gather(
                *(
                    _consume_or_refuse(every[call % clients], amount, admitted * amount)
                    for call in range(calls)
                )
            )
        finally:
            for connection in connections:
                await connection.aclose()
        succeeded = sum(1 for usage in outcomes if usage is not None)
        return succeeded, calls - succeeded

    results.put(asyncio.run(run()))


def _run_processes(namespace: str, processes: int) -> list[tuple[int, int]]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results: Queue[tuple[int, int]] = context.Queue()
    shares = [concurrent_calls // processes] * processes
    shares[0] += concurrent_calls - sum(shares)
    workers = [
        context.Process(target=_consume_in_process, args=(namespace, share, 3, barrier, results))
        for share in shares
    ]
    for worker in workers:
        worker.start()
    try:
        return [results.get(timeout=30) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
                worker.join()


async def test_concurrent_calls_from_several_processes_admit_exactly_what_fits(
    redis_client: Redis, namespace: str
) -> None:
    outcomes = await asyncio.to_thread(_run_processes, namespace, 4)
    assert len(outcomes) == 4
    assert sum(succeeded + refused for succeeded, refused in outcomes) == concurrent_calls
    assert sum(succeeded for succeeded, _ in outcomes) == admitted
    assert await counter(redis_client, day_key(namespace, tenant, noon)) == admitted * amount
    assert await counter(redis_client, hour_key(namespace, tenant, noon)) == admitted


async def test_a_payout_counted_under_a_marker_is_counted_once(
    redis_client: Redis, namespace: str
) -> None:
    """A retry of the same payout (its marker already written) counts nothing and gets the
    first count's amount and moment back, so a give-back touches the day it counted in."""
    limits = DailyLimits(redis_client, namespace=namespace)
    marker = CountOnce(key=f"{namespace}:quote", field="counted")
    await redis_client.hset(marker.key, "quote", "{}")
    await redis_client.expire(marker.key, 600)
    first = await limits.consume(
        tenant_id=tenant, usd_minor=1_500, daily_limit_usd_minor=10_000, once=marker, now=noon
    )
    later = noon + datetime.timedelta(hours=1)
    retried = await limits.consume(
        tenant_id=tenant, usd_minor=1_500, daily_limit_usd_minor=10_000, once=marker, now=later
    )
    assert totals(first) == (1_500, 1)
    assert retried.usd_minor == 1_500
    assert retried.counted_at == noon
    assert await counter(redis_client, day_key(namespace, tenant, noon)) == 1_500
    assert await counter(redis_client, hour_key(namespace, tenant, later)) is None
    assert 0 < await redis_client.ttl(marker.key) <= 600  # The hash keeps its own lifetime.


async def test_a_retry_is_admitted_even_when_the_day_is_full(
    redis_client: Redis, namespace: str
) -> None:
    """The first count admitted the payout; its retry is the same payout, not a new one."""
    limits = DailyLimits(redis_client, namespace=namespace)
    marker = CountOnce(key=f"{namespace}:quote", field="counted")
    await limits.consume(
        tenant_id=tenant, usd_minor=1_000, daily_limit_usd_minor=1_000, once=marker, now=noon
    )
    retried = await limits.consume(
        tenant_id=tenant, usd_minor=1_000, daily_limit_usd_minor=1_000, once=marker, now=noon
    )
    assert totals(retried) == (1_000, 1)


async def test_giving_back_under_a_marker_gives_back_once_and_clears_it(
    redis_client: Redis, namespace: str
) -> None:
    """A give-back returns the count once however often it is called, and the payout paid
    again after it is counted again."""
    limits = DailyLimits(redis_client, namespace=namespace)
    marker = CountOnce(key=f"{namespace}:quote", field="counted")
    usage = await limits.consume(
        tenant_id=tenant, usd_minor=2_000, daily_limit_usd_minor=10_000, once=marker, now=noon
    )
    await limits.give_back(tenant_id=tenant, usage=usage, once=marker)
    await limits.give_back(tenant_id=tenant, usage=usage, once=marker)
    assert await counter(redis_client, day_key(namespace, tenant, noon)) == 0
    assert await counter(redis_client, hour_key(namespace, tenant, noon)) == 0
    assert not await redis_client.hexists(marker.key, marker.field)
    again = await limits.consume(
        tenant_id=tenant, usd_minor=2_000, daily_limit_usd_minor=10_000, once=marker, now=noon
    )
    assert totals(again) == (2_000, 1)


async def test_a_marker_outside_any_hash_expires_with_the_counters(
    redis_client: Redis, namespace: str
) -> None:
    """A marker whose hash is gone is still written, and never left without an expiry."""
    limits = DailyLimits(redis_client, namespace=namespace)
    marker = CountOnce(key=f"{namespace}:gone", field="counted")
    await limits.consume(
        tenant_id=tenant, usd_minor=10, daily_limit_usd_minor=1_000, once=marker, now=noon
    )
    assert await redis_client.hget(marker.key, marker.field) is not None
    assert 0 < await redis_client.ttl(marker.key) <= counter_ttl_seconds


@given(
    moment=st.datetimes(
        min_value=datetime.datetime(1000, 1, 1),
        max_value=datetime.datetime(9999, 12, 31, 23),
        timezones=st.just(datetime.UTC),
    ),
    tenant_id=st.integers(min_value=1, max_value=2**63 - 1),
)
def test_counter_keys_name_the_utc_day_and_hour(moment: datetime.datetime, tenant_id: int) -> None:
    """The keys are formatted by hand for speed; they must read as `strftime` writes them."""
    limits = DailyLimits(Redis.from_url(redis_url), namespace="keys")
    assert limits.counter_keys(tenant_id=tenant_id, moment=moment) == [
        day_key("keys", tenant_id, moment),
        hour_key("keys", tenant_id, moment),
    ]


def batch_totals(usages: list[Usage | None]) -> list[int | None]:
    return [None if usage is None else usage.usd_minor for usage in usages]


async def test_a_batch_retried_decides_alike_and_counts_once(
    redis_client: Redis, namespace: str
) -> None:
    """The first attempt admits items 0 and 1 and refuses 2 at the limit; its retry, an
    hour later and with item 3 (not asked the first time), gets the same answers for 0 to 2
    at the first count's moment, counts only item 3, and the counters hold each item once."""
    limits = DailyLimits(redis_client, namespace=namespace)
    marker = limits.batch_marker(tenant_id=tenant, batch_id=77)
    first = await limits.consume_many(
        tenant_id=tenant,
        usd_minor={0: 400, 1: 500, 2: 300},
        daily_limit_usd_minor=1_000,
        once=marker,
        now=noon,
    )
    later = noon + datetime.timedelta(hours=1)
    retried = await limits.consume_many(
        tenant_id=tenant,
        usd_minor={0: 400, 1: 500, 2: 300, 3: 100},
        daily_limit_usd_minor=1_000,
        once=marker,
        now=later,
    )
    assert batch_totals(first) == [400, 500, None]
    assert batch_totals(retried) == [400, 500, None, 100]
    assert [usage.counted_at for usage in retried if usage is not None] == [noon, noon, later]
    assert await counter(redis_client, day_key(namespace, tenant, noon)) == 1_000
    assert await counter(redis_client, hour_key(namespace, tenant, noon)) == 2
    assert await counter(redis_client, hour_key(namespace, tenant, later)) == 1
    assert 0 < await redis_client.ttl(marker.key) <= counter_ttl_seconds


async def test_a_batch_gives_each_item_back_once(redis_client: Redis, namespace: str) -> None:
    """Giving back item 1 twice returns it once; giving back the rest clears the marker, so
    the next attempt of the batch counts afresh."""
    limits = DailyLimits(redis_client, namespace=namespace)
    marker = limits.batch_marker(tenant_id=tenant, batch_id=78)
    amounts = {0: 100, 1: 200, 2: 300}
    usages = await limits.consume_many(
        tenant_id=tenant, usd_minor=amounts, daily_limit_usd_minor=10_000, once=marker, now=noon
    )
    counted = {index: usage for index, usage in zip(amounts, usages, strict=True) if usage}
    for _ in range(2):
        await limits.give_back_many(tenant_id=tenant, usages={1: counted[1]}, once=marker)
    assert await counter(redis_client, day_key(namespace, tenant, noon)) == 400
    assert await counter(redis_client, hour_key(namespace, tenant, noon)) == 2
    await limits.give_back_many(tenant_id=tenant, usages=counted, once=marker)
    assert await counter(redis_client, day_key(namespace, tenant, noon)) == 0
    assert not await redis_client.hexists(marker.key, marker.field)
    again = await limits.consume_many(
        tenant_id=tenant, usd_minor=amounts, daily_limit_usd_minor=10_000, once=marker, now=noon
    )
    assert batch_totals(again) == [100, 200, 300]
    assert await counter(redis_client, day_key(namespace, tenant, noon)) == 600


async def test_the_repair_gives_a_batch_back_by_its_marker_alone(
    redis_client: Redis, namespace: str
) -> None:
    """What the marker still holds goes back, once; other payouts of the day stay counted."""
    limits = DailyLimits(redis_client, namespace=namespace)
    marker = limits.batch_marker(tenant_id=tenant, batch_id=79)
    await limits.consume(tenant_id=tenant, usd_minor=700, daily_limit_usd_minor=10_000, now=noon)
    usages = await limits.consume_many(
        tenant_id=tenant,
        usd_minor={0: 1_000, 1: 2_000},
        daily_limit_usd_minor=10_000,
        once=marker,
        now=noon,
    )
    assert usages[0] is not None
    await limits.give_back_many(tenant_id=tenant, usages={0: usages[0]}, once=marker)
    assert await limits.give_back_marked_batch(tenant_id=tenant, once=marker) == 1
    assert await limits.give_back_marked_batch(tenant_id=tenant, once=marker) == 0
    assert await counter(redis_client, day_key(namespace, tenant, noon)) == 700
    assert await counter(redis_client, hour_key(namespace, tenant, noon)) == 1
    never = limits.batch_marker(tenant_id=tenant, batch_id=80)
    assert await limits.give_back_marked_batch(tenant_id=tenant, once=never) == 0


async def test_giving_back_items_never_counted_keeps_the_batchs_refusals(
    redis_client: Redis, namespace: str
) -> None:
    """A give-back that gives back nothing changes nothing: the marker of a batch that
    counted nothing still remembers its refusals, so a retry refuses alike."""
    limits = DailyLimits(redis_client, namespace=namespace)
    marker = limits.batch_marker(tenant_id=tenant, batch_id=82)
    asked = {0: 2_000}
    assert await limits.consume_many(
        tenant_id=tenant, usd_minor=asked, daily_limit_usd_minor=1_000, once=marker, now=noon
    ) == [None]
    never = Usage(usd_minor=2_000, counted_at=noon, day_usd_minor=0, payouts_last_hour=0)
    await limits.give_back_many(tenant_id=tenant, usages={0: never}, once=marker)
    retried = await limits.consume_many(
        tenant_id=tenant, usd_minor=asked, daily_limit_usd_minor=10_000, once=marker, now=noon
    )
    assert retried == [None]
    assert await counter(redis_client, day_key(namespace, tenant, noon)) is None


# --- Against an independent model ---------------------------------------------------------

tenants = (4242, 4243)
markers = ("quote-a", "quote-b", "quote-c")
# Moments over three UTC days, whole seconds (the scripts keep milliseconds).
moments = st.integers(min_value=0, max_value=3 * 86_400 - 1).map(
    lambda seconds: noon.replace(hour=0) + datetime.timedelta(seconds=seconds)
)
payments = st.builds(
    Payment,
    tenant=st.sampled_from(tenants),
    currency=codes,
    amount_minor=st.integers(min_value=1, max_value=10**9),
    drift=drift_per_mille,
    moment=moments,
    marker=st.none() | st.sampled_from(markers),
)
# A give-back names the n-th admitted payout (modulo how many there are): again and again.
give_backs = st.integers(min_value=0, max_value=30)


def _usd(payment: Payment) -> tuple[int, int]:
    """The payout's USD equivalent as the product computes it, and as the model does."""
    currency = markets_registry.get(payment.currency)
    rate = mid_rate(payment.currency, "USD", payment.drift)
    counted = usd_equivalent_minor(
        amount_minor=payment.amount_minor, currency=currency, to_usd_mid=rate
    )
    return counted, usd_cents(
        payment.amount_minor, minor_units=markets[payment.currency][1], to_usd=rate
    )


@st.composite
def limit_scenarios(draw: st.DrawFn) -> tuple[list[Payment | int], dict[int, int]]:
    """Payments and give-backs in any order, and each tenant's daily limit: anywhere from
    nothing to all of it, often exactly what some of its payments add up to, so that a
    payout reaching the limit exactly is tried."""
    steps = draw(st.lists(payments | give_backs, min_size=1, max_size=25))
    limits: dict[int, int] = {}
    for tenant in tenants:
        usds = [
            _usd(step)[1] for step in steps if isinstance(step, Payment) and step.tenant == tenant
        ]
        sums = [sum(usds[:end]) for end in range(1, len(usds) + 1)] or [0]
        limits[tenant] = draw(st.integers(0, 2 * sums[-1]) | st.sampled_from(sums))
    return steps, limits


@settings(max_examples=60, deadline=None)
@given(scenario=limit_scenarios())
def test_admissions_velocity_and_counters_match_an_independent_model(
    scenario: tuple[list[Payment | int], dict[int, int]],
) -> None:
    """Payouts in many currencies (counted in their USD equivalent), for two tenants over
    three UTC days, with and without count-once markers, and give-backs of any of them (once
    or again): every admission or refusal, the amount and moment each counts, the day's
    volume and the hour's payouts it answers, and every counter in Redis, are the model's."""
    asyncio.run(_run_scenario(*scenario))


async def _run_scenario(steps: list[Payment | int], limits: dict[int, int]) -> None:
    async with _limits_in_namespace() as (redis, namespace, limits_service):
        model = LimitsModel()
        admitted: list[tuple[Payment, Usage]] = []
        for number, step in enumerate(steps):
            if isinstance(step, Payment):
                usage = await _pay(limits_service, model, step, limits[step.tenant], namespace)
                if usage is not None:
                    admitted.append((step, usage))
            elif admitted:
                payment, usage = admitted[step % len(admitted)]
                once = None if payment.marker is None else _marker(namespace, payment.marker)
                await limits_service.give_back(tenant_id=payment.tenant, usage=usage, once=once)
                model.give_back(
                    tenant=payment.tenant,
                    usd=usage.usd_minor,
                    counted_at=usage.counted_at,
                    marker=payment.marker,
                )
            assert await _counters(redis, namespace) == model.counters, f"after step {number}"


async def _pay(
    limits_service: DailyLimits, model: LimitsModel, payment: Payment, limit: int, namespace: str
) -> Usage | None:
    counted_usd, model_usd = _usd(payment)
    assert counted_usd == model_usd, f"{payment.amount_minor} {payment.currency} in cents"
    once = None if payment.marker is None else _marker(namespace, payment.marker)
    try:
        usage: Usage | None = await limits_service.consume(
            tenant_id=payment.tenant,
            usd_minor=counted_usd,
            daily_limit_usd_minor=limit,
            once=once,
            now=payment.moment,
        )
    except DailyLimitExceeded:
        usage = None
    expected = model.count(
        tenant=payment.tenant,
        usd=model_usd,
        limit=limit,
        moment=payment.moment,
        marker=payment.marker,
    )
    answered = (
        None
        if usage is None
        else Counted(
            usage.usd_minor, usage.counted_at, usage.day_usd_minor, usage.payouts_last_hour
        )
    )
    assert answered == expected, f"{payment} against a limit of {limit}"
    return usage


def _marker(namespace: str, name: str) -> CountOnce:
    return CountOnce(key=f"{namespace}:{name}", field="counted")


@contextlib.asynccontextmanager
async def _limits_in_namespace() -> AsyncIterator[tuple[Redis, str, DailyLimits]]:
    redis = Redis.from_url(redis_url)
    namespace = f"kovra-test-{secrets.token_hex(8)}"
    try:
        yield redis, namespace, DailyLimits(redis, namespace=namespace)
    finally:
        keys = [key async for key in redis.scan_iter(match=f"{namespace}:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


async def _counters(redis: Redis, namespace: str) -> dict[str, int]:
    """Every day and hour counter in `namespace`, by key without the namespace."""
    keys = sorted([key.decode() async for key in redis.scan_iter(match=f"{namespace}:limit:*")])
    values: list[bytes | str | None] = await redis.mget(keys) if keys else []
    prefix = f"{namespace}:"
    return {
        key.removeprefix(prefix): int(value)
        for key, value in zip(keys, values, strict=True)
        if value is not None
    }


batch_amounts = st.dictionaries(
    st.integers(0, 7), st.integers(min_value=1, max_value=4_000), min_size=8, max_size=8
)
batch_steps = st.lists(
    st.one_of(
        st.tuples(st.just("attempt"), st.sets(st.integers(0, 7), min_size=1), moments),
        st.tuples(st.just("give_back"), st.sets(st.integers(0, 7), min_size=1), moments),
        st.tuples(st.just("repair"), st.just(frozenset[int]()), moments),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(steps=batch_steps, amounts=batch_amounts, limit=st.integers(min_value=0, max_value=20_000))
def test_a_batchs_decisions_and_counters_match_an_independent_model(
    steps: list[tuple[str, frozenset[int], datetime.datetime]],
    amounts: dict[int, int],
    limit: int,
) -> None:
    """Attempts of one batch over any of its items at any moments of three days, give-backs of
    any items (counted or not) and repairs, in any order: each item's decision (counted now,
    counted before and when, refused), the totals answered, and every counter in Redis, are
    the model's; so the day never holds more than the limit and an item never counts twice."""
    asyncio.run(_run_batch_steps(steps, amounts, limit))


async def _run_batch_steps(
    steps: list[tuple[str, frozenset[int], datetime.datetime]], amounts: dict[int, int], limit: int
) -> None:
    async with _limits_in_namespace() as (redis, namespace, limits):
        marker = limits.batch_marker(tenant_id=tenant, batch_id=81)
        model = LimitsModel()
        held: dict[int, Usage] = {}  # The last usage answered for each item, as a caller keeps.
        for number, (action, indices, moment) in enumerate(steps):
            if action == "attempt":
                asked = {index: amounts[index] for index in sorted(indices)}
                usages = await limits.consume_many(
                    tenant_id=tenant,
                    usd_minor=asked,
                    daily_limit_usd_minor=limit,
                    once=marker,
                    now=moment,
                )
                expected = model.count_batch(
                    tenant=tenant, usd=asked, limit=limit, moment=moment, marker=marker.field
                )
                answered = [
                    None
                    if u is None
                    else Counted(u.usd_minor, u.counted_at, u.day_usd_minor, u.payouts_last_hour)
                    for u in usages
                ]
                assert answered == expected, f"attempt {number} of {asked} at {moment}"
                held |= {index: u for index, u in zip(asked, usages, strict=True) if u is not None}
            elif action == "give_back":
                # Items never counted are given back too (at `moment`): they give back nothing.
                given = {
                    index: held.get(index)
                    or Usage(
                        usd_minor=amounts[index],
                        counted_at=moment,
                        day_usd_minor=0,
                        payouts_last_hour=0,
                    )
                    for index in indices
                }
                await limits.give_back_many(tenant_id=tenant, usages=given, once=marker)
                model.give_back_batch(
                    tenant=tenant,
                    items={index: (u.usd_minor, u.counted_at) for index, u in given.items()},
                    marker=marker.field,
                )
            else:
                repaired = await limits.give_back_marked_batch(tenant_id=tenant, once=marker)
                assert repaired == model.repair_batch(tenant=tenant, marker=marker.field)
            assert await _counters(redis, namespace) == model.counters, f"after step {number}"
