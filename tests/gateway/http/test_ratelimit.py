"""Per-tenant GCRA rate limiting and principal lookup against a real Redis.

Proves that a fresh tenant gets exactly its limit as a burst, is then refused with a correct
`Retry-After` and recovers as time passes; that the RateLimit headers say so; that four OS
processes racing on one tenant at the same instant admit exactly the limit in total; that
unknown, revoked and half-cached keys are cache misses that consume nothing; that a frozen
tenant still authenticates with its status; and that bad inputs are refused by field name.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import secrets
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

import pytest
from redis.asyncio import Redis

from gateway.http.ratelimit import (
    AuthOutcome,
    Principal,
    RateLimitDecision,
    RateLimiter,
    rate_limit_headers,
    record_cache_ttl_seconds,
    requests_per_minute_max,
)
from tests.conftest import fresh_tenant_id, redis_url

start_ms = 1_700_000_000_000
window_ms = 60_000
process_count = 4
requests_per_process = 75
barrier_timeout_seconds = 60
process_join_timeout_seconds = 120


@pytest.fixture
def limiter(redis_client: Redis, namespace: str) -> RateLimiter:
    return RateLimiter(redis_client, namespace=namespace)


def fresh_key_hash() -> str:
    return secrets.token_hex(32)


async def make_tenant(
    limiter: RateLimiter, *, limit: int, status: str = "active", role: str = "operator"
) -> tuple[str, int]:
    """A tenant with one API key (key id 7); returns the key hash and the tenant id."""
    key_hash, tenant_id = fresh_key_hash(), fresh_tenant_id()
    await limiter.store_tenant(
        tenant_id=tenant_id,
        requests_per_minute=limit,
        status=status,
        compliance_region="EU",
        daily_limit_usd_minor=1_000_000,
    )
    await limiter.store_api_key(key_hash_hex=key_hash, tenant_id=tenant_id, role=role, key_id=7)
    return key_hash, tenant_id


def decision_of(outcome: AuthOutcome) -> RateLimitDecision:
    assert not outcome.cache_miss
    assert outcome.decision is not None
    return outcome.decision


async def test_a_fresh_tenant_gets_exactly_its_limit_as_a_burst(limiter: RateLimiter) -> None:
    key_hash, _ = await make_tenant(limiter, limit=10)
    interval_ms = window_ms // 10
    for sent in range(1, 11):
        outcome = await limiter.authenticate_api_key(key_hash_hex=key_hash, now_ms=start_ms)
        assert decision_of(outcome) == RateLimitDecision(
            allowed=True,
            limit=10,
            remaining=10 - sent,
            reset_seconds=sent * interval_ms // 1_000,
            retry_after_seconds=0,
            window_seconds=60,
        )
    refused = await limiter.authenticate_api_key(key_hash_hex=key_hash, now_ms=start_ms)
    assert decision_of(refused) == RateLimitDecision(
        allowed=False,
        limit=10,
        remaining=0,
        reset_seconds=60,
        retry_after_seconds=6,
        window_seconds=60,
    )


async def test_a_refused_tenant_recovers_one_request_per_interval(limiter: RateLimiter) -> None:
    key_hash, _ = await make_tenant(limiter, limit=10)
    for _ in range(10):
        await limiter.authenticate_api_key(key_hash_hex=key_hash, now_ms=start_ms)
    almost = await limiter.authenticate_api_key(key_hash_hex=key_hash, now_ms=start_ms + 5_999)
    assert not decision_of(almost).allowed
    assert decision_of(almost).retry_after_seconds == 1  # 1 ms left rounds up, never down.
    due = await limiter.authenticate_api_key(key_hash_hex=key_hash, now_ms=start_ms + 6_000)
    assert (decision_of(due).allowed, decision_of(due).remaining) == (True, 0)
    again = await limiter.authenticate_api_key(key_hash_hex=key_hash, now_ms=start_ms + 6_000)
    assert (decision_of(again).allowed, decision_of(again).retry_after_seconds) == (False, 6)
    rested = start_ms + 6_000 + window_ms
    allowed = [
        decision_of(await limiter.authenticate_api_key(key_hash_hex=key_hash, now_ms=rested))
        for _ in range(11)
    ]
    assert [decision.allowed for decision in allowed] == [True] * 10 + [False]


async def test_a_limit_that_does_not_divide_the_window_is_never_exceeded(
    limiter: RateLimiter,
) -> None:
    key_hash, _ = await make_tenant(limiter, limit=7)
    step_ms, duration_ms = 500, 10 * window_ms
    allowed = 0
    for offset in range(0, duration_ms, step_ms):
        outcome = await limiter.authenticate_api_key(
            key_hash_hex=key_hash, now_ms=start_ms + offset
        )
        allowed += decision_of(outcome).allowed
    # The burst, then 7 per window: rounding the interval up may only ever cost requests.
    assert 7 + 7 * 10 - 1 <= allowed <= 7 + 7 * 10


async def test_headers_follow_the_decision(limiter: RateLimiter) -> None:
    key_hash, _ = await make_tenant(limiter, limit=2)
    first = await limiter.authenticate_api_key(key_hash_hex=key_hash, now_ms=start_ms)
    assert rate_limit_headers(decision_of(first)) == {
        "RateLimit-Limit": "2",
        "RateLimit-Remaining": "1",
        "RateLimit-Reset": "30",
        "RateLimit-Policy": "2;w=60",
    }
    await limiter.authenticate_api_key(key_hash_hex=key_hash, now_ms=start_ms)
    refused = await limiter.authenticate_api_key(key_hash_hex=key_hash, now_ms=start_ms + 1_000)
    assert rate_limit_headers(decision_of(refused)) == {
        "RateLimit-Limit": "2",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": "59",
        "RateLimit-Policy": "2;w=60",
        "Retry-After": "29",
    }


def test_headers_report_the_configured_window() -> None:
    decision = RateLimitDecision(
        allowed=False,
        limit=500,
        remaining=0,
        reset_seconds=10,
        retry_after_seconds=1,
        window_seconds=10,
    )
    headers = rate_limit_headers(decision)
    assert headers["RateLimit-Policy"] == "500;w=10"
    assert headers["Retry-After"] == "1"


async def test_the_window_is_configurable(redis_client: Redis, namespace: str) -> None:
    limiter = RateLimiter(redis_client, namespace=namespace, window_seconds=1)
    key_hash, _ = await make_tenant(limiter, limit=4)
    decisions = [
        decision_of(await limiter.authenticate_api_key(key_hash_hex=key_hash, now_ms=start_ms))
        for _ in range(5)
    ]
    assert [decision.allowed for decision in decisions] == [True] * 4 + [False]
    assert decisions[-1].retry_after_seconds == 1
    assert rate_limit_headers(decisions[-1])["RateLimit-Policy"] == "4;w=1"


async def test_server_time_is_used_when_no_clock_is_given(
    limiter: RateLimiter, redis_client: Redis, namespace: str
) -> None:
    key_hash, tenant_id = await make_tenant(limiter, limit=3)
    decisions = [
        decision_of(await limiter.authenticate_api_key(key_hash_hex=key_hash)) for _ in range(4)
    ]
    assert [decision.allowed for decision in decisions] == [True, True, True, False]
    assert 1 <= decisions[-1].retry_after_seconds <= 20
    # The GCRA state expires by itself once the budget would be full again.
    expiry_ms = await redis_client.pttl(f"{namespace}:rl:{tenant_id}")
    assert 0 < expiry_ms <= window_ms


def hammer_in_process(
    namespace: str, key_hash: str, now_ms: int, barrier: Barrier, results: Queue[int]
) -> None:
    """Entry point of a spawned process: its own event loop and Redis connection."""
    results.put(asyncio.run(hammer(namespace, key_hash, now_ms, barrier)))


async def hammer(namespace: str, key_hash: str, now_ms: int, barrier: Barrier) -> int:
    client = Redis.from_url(redis_url)
    try:
        limiter = RateLimiter(client, namespace=namespace)
        await client.ping()  # Connect before the start line, so all processes race at once.
        await asyncio.to_thread(barrier.wait, barrier_timeout_seconds)
        allowed = 0
        for _ in range(requests_per_process):
            outcome = await limiter.authenticate_api_key(key_hash_hex=key_hash, now_ms=now_ms)
            allowed += decision_of(outcome).allowed
        return allowed
    finally:
        await client.aclose()


def run_processes(namespace: str, key_hash: str) -> list[int]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(process_count)
    results: Queue[int] = context.Queue()
    processes = [
        context.Process(
            target=hammer_in_process, args=(namespace, key_hash, start_ms, barrier, results)
        )
        for _ in range(process_count)
    ]
    for process in processes:
        process.start()
    counts = [results.get(timeout=process_join_timeout_seconds) for _ in processes]
    for process in processes:
        process.join(timeout=process_join_timeout_seconds)
        assert process.exitcode == 0
    results.close()
    results.join_thread()
    return counts


async def test_processes_racing_at_one_instant_admit_exactly_the_limit(
    limiter: RateLimiter, namespace: str
) -> None:
    key_hash, _ = await make_tenant(limiter, limit=100)
    counts = await asyncio.to_thread(run_processes, namespace, key_hash)
    assert len(counts) == process_count
    assert sum(counts) == 100
    after = await limiter.authenticate_api_key(key_hash_hex=key_hash, now_ms=start_ms)
    assert not decision_of(after).allowed


async def test_an_unknown_key_is_a_cache_miss(limiter: RateLimiter) -> None:
    outcome = await limiter.authenticate_api_key(key_hash_hex=fresh_key_hash(), now_ms=start_ms)
    assert outcome == AuthOutcome(principal=None, decision=None, cache_miss=True)


async def test_a_key_whose_tenant_is_not_cached_is_a_miss_that_consumes_nothing(
    limiter: RateLimiter,
) -> None:
    key_hash, tenant_id = fresh_key_hash(), fresh_tenant_id()
    await limiter.store_api_key(key_hash_hex=key_hash, tenant_id=tenant_id, role="admin", key_id=3)
    missed = await limiter.authenticate_api_key(key_hash_hex=key_hash, now_ms=start_ms)
    assert missed.cache_miss
    await limiter.store_tenant(
        tenant_id=tenant_id,
        requests_per_minute=5,
        status="active",
        compliance_region="UK",
        daily_limit_usd_minor=10_000_00,
    )
    retried = await limiter.authenticate_api_key(key_hash_hex=key_hash, now_ms=start_ms)
    assert retried.principal == Principal(
        tenant_id=tenant_id, role="admin", key_id=3, compliance_region="UK", status="active"
    )
    assert decision_of(retried).remaining == 4


async def test_a_revoked_key_is_a_cache_miss(limiter: RateLimiter) -> None:
    key_hash, _ = await make_tenant(limiter, limit=10)
    assert not (await limiter.authenticate_api_key(key_hash_hex=key_hash)).cache_miss
    await limiter.revoke_api_key(key_hash_hex=key_hash)
    revoked = await limiter.authenticate_api_key(key_hash_hex=key_hash)
    assert revoked == AuthOutcome(principal=None, decision=None, cache_miss=True)


async def test_a_frozen_tenant_authenticates_with_its_status(limiter: RateLimiter) -> None:
    key_hash, tenant_id = await make_tenant(limiter, limit=10, status="frozen", role="read_only")
    outcome = await limiter.authenticate_api_key(key_hash_hex=key_hash, now_ms=start_ms)
    assert outcome.principal == Principal(
        tenant_id=tenant_id, role="read_only", key_id=7, compliance_region="EU", status="frozen"
    )
    assert decision_of(outcome).allowed


async def test_jwt_callers_share_their_tenants_budget(limiter: RateLimiter) -> None:
    key_hash, tenant_id = await make_tenant(limiter, limit=3)
    await limiter.authenticate_api_key(key_hash_hex=key_hash, now_ms=start_ms)
    outcomes = [
        await limiter.authenticate_tenant(tenant_id=tenant_id, role="admin", now_ms=start_ms)
        for _ in range(3)
    ]
    assert outcomes[0].principal == Principal(
        tenant_id=tenant_id, role="admin", key_id=None, compliance_region="EU", status="active"
    )
    assert [decision_of(outcome).allowed for outcome in outcomes] == [True, True, False]


async def test_a_jwt_caller_of_an_uncached_tenant_is_a_cache_miss(limiter: RateLimiter) -> None:
    outcome = await limiter.authenticate_tenant(tenant_id=fresh_tenant_id(), role="operator")
    assert outcome == AuthOutcome(principal=None, decision=None, cache_miss=True)


async def test_a_new_limit_applies_to_the_share_of_the_window_already_used(
    limiter: RateLimiter,
) -> None:
    key_hash, tenant_id = await make_tenant(limiter, limit=1)
    await limiter.authenticate_api_key(key_hash_hex=key_hash, now_ms=start_ms)
    await limiter.store_tenant(
        tenant_id=tenant_id,
        requests_per_minute=500,
        status="active",
        compliance_region="ID",
        daily_limit_usd_minor=100_000_00,
    )
    # The whole window was used, so the upgrade refills at the new rate (one per 120 ms)...
    at_once = await limiter.authenticate_api_key(key_hash_hex=key_hash, now_ms=start_ms)
    assert (decision_of(at_once).allowed, decision_of(at_once).limit) == (False, 500)
    assert at_once.principal is not None
    assert at_once.principal.compliance_region == "ID"
    # ...and half a window later half of the new budget is there.
    later = await limiter.authenticate_api_key(key_hash_hex=key_hash, now_ms=start_ms + 30_000)
    assert (decision_of(later).allowed, decision_of(later).remaining) == (True, 249)


async def test_records_follow_the_data_model(
    limiter: RateLimiter, redis_client: Redis, namespace: str
) -> None:
    key_hash, tenant_id = await make_tenant(limiter, limit=100)
    api_key = await redis_client.hgetall(f"{namespace}:apikey:{key_hash}")
    assert api_key == {b"tenant_id": str(tenant_id).encode(), b"role": b"operator", b"key_id": b"7"}
    tenant = await redis_client.hgetall(f"{namespace}:tenant:{tenant_id}")
    assert tenant == {
        b"requests_per_minute": b"100",
        b"status": b"active",
        b"compliance_region": b"EU",
        b"daily_limit_usd_minor": b"1000000",
    }
    expiry = await redis_client.ttl(f"{namespace}:tenant:{tenant_id}")
    assert 0 < expiry <= record_cache_ttl_seconds
    await limiter.authenticate_api_key(key_hash_hex=key_hash, now_ms=start_ms)
    # The theoretical arrival time, in microseconds.
    assert (
        await redis_client.get(f"{namespace}:rl:{tenant_id}")
        == str((start_ms + 600) * 1000).encode()
    )


async def test_a_client_that_decodes_responses_works_too(namespace: str) -> None:
    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        limiter = RateLimiter(client, namespace=namespace)
        key_hash, tenant_id = await make_tenant(limiter, limit=10)
        outcome = await limiter.authenticate_api_key(key_hash_hex=key_hash, now_ms=start_ms)
        assert outcome.principal is not None
        assert outcome.principal.tenant_id == tenant_id
    finally:
        await client.aclose()


async def store_tenant_with(
    limiter: RateLimiter,
    *,
    tenant_id: int = 1,
    requests_per_minute: int = 100,
    status: str = "active",
    compliance_region: str = "EU",
    daily_limit_usd_minor: int = 1,
) -> None:
    await limiter.store_tenant(
        tenant_id=tenant_id,
        requests_per_minute=requests_per_minute,
        status=status,
        compliance_region=compliance_region,
        daily_limit_usd_minor=daily_limit_usd_minor,
    )


async def store_api_key_with(
    limiter: RateLimiter,
    *,
    key_hash_hex: str = "ab" * 32,
    tenant_id: int = 1,
    role: str = "admin",
    key_id: int = 1,
) -> None:
    await limiter.store_api_key(
        key_hash_hex=key_hash_hex, tenant_id=tenant_id, role=role, key_id=key_id
    )


async def test_bad_tenant_records_are_refused_by_field(limiter: RateLimiter) -> None:
    with pytest.raises(ValueError, match="tenant_id"):
        await store_tenant_with(limiter, tenant_id=0)
    with pytest.raises(ValueError, match="requests_per_minute"):
        await store_tenant_with(limiter, requests_per_minute=0)
    with pytest.raises(ValueError, match="requests_per_minute"):
        await store_tenant_with(limiter, requests_per_minute=requests_per_minute_max + 1)
    with pytest.raises(ValueError, match="status"):
        await store_tenant_with(limiter, status="closed")
    with pytest.raises(ValueError, match="compliance_region"):
        await store_tenant_with(limiter, compliance_region="US")
    with pytest.raises(ValueError, match="daily_limit_usd_minor"):
        await store_tenant_with(limiter, daily_limit_usd_minor=-1)


async def test_bad_api_key_records_are_refused_by_field(limiter: RateLimiter) -> None:
    with pytest.raises(ValueError, match="key_hash_hex"):
        await store_api_key_with(limiter, key_hash_hex="ABCDEF" * 8)
    with pytest.raises(ValueError, match="key_hash_hex"):
        await store_api_key_with(limiter, key_hash_hex="ab")
    with pytest.raises(ValueError, match="tenant_id"):
        await store_api_key_with(limiter, tenant_id=2**64)
    with pytest.raises(ValueError, match="role"):
        await store_api_key_with(limiter, role="root")
    with pytest.raises(ValueError, match="key_id"):
        await store_api_key_with(limiter, key_id=0)


async def test_bad_lookups_are_refused_by_field(limiter: RateLimiter) -> None:
    with pytest.raises(ValueError, match="role"):
        await limiter.authenticate_tenant(tenant_id=1, role="superuser")
    with pytest.raises(ValueError, match="key_hash_hex"):
        await limiter.authenticate_api_key(key_hash_hex="not hex")
    with pytest.raises(ValueError, match="now_ms"):
        await limiter.authenticate_api_key(key_hash_hex=fresh_key_hash(), now_ms=-1)


def test_bad_limiter_settings_are_refused_by_field(redis_client: Redis) -> None:
    with pytest.raises(ValueError, match="window_seconds"):
        RateLimiter(redis_client, window_seconds=0)
    with pytest.raises(ValueError, match="namespace"):
        RateLimiter(redis_client, namespace="has space")


async def test_intervals_shorter_than_a_millisecond_are_exact(
    redis_client: Redis, namespace: str
) -> None:
    """The TAT counts microseconds: 2,000 a second is one per 500 µs, so a drained budget
    admits exactly two more a millisecond later (whole milliseconds would admit one)."""
    limiter = RateLimiter(redis_client, namespace=namespace, window_seconds=1)
    key_hash, tenant_id = await make_tenant(limiter, limit=2_000)
    # A drained budget: the theoretical arrival time a whole window ahead.
    drained_us = start_ms * 1_000 + 1_000_000
    await redis_client.set(f"{namespace}:rl:{tenant_id}", str(drained_us), px=60_000)

    async def admitted(now_ms: int, attempts: int) -> int:
        outcomes = [
            decision_of(await limiter.authenticate_api_key(key_hash_hex=key_hash, now_ms=now_ms))
            for _ in range(attempts)
        ]
        return sum(decision.allowed for decision in outcomes)

    assert await admitted(start_ms, 3) == 0
    assert await admitted(start_ms + 1, 5) == 2


async def test_a_policy_may_allow_a_million_requests_a_minute(limiter: RateLimiter) -> None:
    key_hash, _ = await make_tenant(limiter, limit=requests_per_minute_max)
    decision = decision_of(await limiter.authenticate_api_key(key_hash_hex=key_hash))
    assert decision.allowed
    assert decision.remaining == requests_per_minute_max - 1
