"""`Idempotency-Key` records in a real Redis.

Proves that the first request claims the key and later ones replay its stored response;
that the same key with another fingerprint is a conflict; that 50 concurrent requests with
one key run the request exactly once and all replay the identical response; that a lapsed
in-progress lease lets exactly one waiter take over; that a waiter gives up with a timeout;
that complete and abandon only touch the record they own; and that malformed keys are
refused naming `Idempotency-Key`.
"""

from __future__ import annotations

import asyncio
import secrets

import pytest
from redis.asyncio import Redis

from gateway.http.idempotency import (
    IdempotencyConflict,
    IdempotencyInProgressTimeout,
    IdempotencyStore,
    StoredResponse,
    fingerprint,
    idempotency_ttl_seconds,
    key_length_max,
    lease_ms_default,
)
from tests.conftest import fresh_tenant_id, redis_url

concurrent_requests = 50
short_lease_ms = 300
created = StoredResponse(
    status_code=201, body=b'{"id":"tr_1","status":"processing"}', content_type="application/json"
)


@pytest.fixture
def store(redis_client: Redis, namespace: str) -> IdempotencyStore:
    return IdempotencyStore(redis_client, namespace=namespace)


def fresh_key() -> str:
    return secrets.token_urlsafe(16)


def request_fingerprint(body: bytes = b'{"quote_id":"q_1"}') -> bytes:
    return fingerprint(method="POST", path="/v1/transfers", body=body)


def test_fingerprints_frame_each_part() -> None:
    one = fingerprint(method="POST", path="/v1/ab", body=b"c")
    assert len(one) == 32
    assert one == fingerprint(method="POST", path="/v1/ab", body=b"c")
    assert one != fingerprint(method="POST", path="/v1/a", body=b"bc")
    assert one != fingerprint(method="PUT", path="/v1/ab", body=b"c")
    assert one != fingerprint(method="POST", path="/v1/ab", body=b"c ")


async def test_the_first_request_runs_and_retries_replay_its_response(
    store: IdempotencyStore, redis_client: Redis, namespace: str
) -> None:
    tenant_id, key, fp = fresh_tenant_id(), fresh_key(), request_fingerprint()
    assert await store.begin(tenant_id=tenant_id, key=key, request_fingerprint=fp) is None
    await store.complete(tenant_id=tenant_id, key=key, request_fingerprint=fp, response=created)
    replay = await store.begin(tenant_id=tenant_id, key=key, request_fingerprint=fp)
    assert replay == created
    expiry = await redis_client.ttl(f"{namespace}:idem:{tenant_id}:{key}")
    assert idempotency_ttl_seconds - 5 < expiry <= idempotency_ttl_seconds


async def test_an_empty_body_replays_too(store: IdempotencyStore) -> None:
    tenant_id, key, fp = fresh_tenant_id(), fresh_key(), request_fingerprint()
    empty = StoredResponse(status_code=204, body=b"", content_type="text/plain")
    await store.begin(tenant_id=tenant_id, key=key, request_fingerprint=fp)
    await store.complete(tenant_id=tenant_id, key=key, request_fingerprint=fp, response=empty)
    assert await store.begin(tenant_id=tenant_id, key=key, request_fingerprint=fp) == empty


async def test_the_same_key_with_another_body_is_a_conflict(store: IdempotencyStore) -> None:
    tenant_id, key = fresh_tenant_id(), fresh_key()
    first, other = request_fingerprint(b'{"a":1}'), request_fingerprint(b'{"a":2}')
    await store.begin(tenant_id=tenant_id, key=key, request_fingerprint=first)
    with pytest.raises(IdempotencyConflict):
        await store.begin(tenant_id=tenant_id, key=key, request_fingerprint=other)
    await store.complete(tenant_id=tenant_id, key=key, request_fingerprint=first, response=created)
    with pytest.raises(IdempotencyConflict):
        await store.begin(tenant_id=tenant_id, key=key, request_fingerprint=other)


async def test_keys_belong_to_one_tenant(store: IdempotencyStore) -> None:
    key = fresh_key()
    for tenant_id in (fresh_tenant_id(), fresh_tenant_id()):
        body = str(tenant_id).encode()  # Another body under each tenant: no conflict.
        fingerfp = request_fingerprint(body)
        assert await store.begin(tenant_id=tenant_id, key=key, request_fingerprint=fingerfp) is None


async def test_concurrent_requests_with_one_key_run_once_and_replay_the_same_response(
    store: IdempotencyStore,
) -> None:
    tenant_id, key, fp = fresh_tenant_id(), fresh_key(), request_fingerprint()
    attempts = [
        asyncio.create_task(store.begin(tenant_id=tenant_id, key=key, request_fingerprint=fp))
        for _ in range(concurrent_requests)
    ]
    done, waiting = await asyncio.wait(attempts, return_when=asyncio.FIRST_COMPLETED)
    assert [task.result() for task in done] == [None]
    assert len(waiting) == concurrent_requests - 1
    await store.complete(tenant_id=tenant_id, key=key, request_fingerprint=fp, response=created)
    replays = await asyncio.gather(*waiting)
    assert replays == [created] * (concurrent_requests - 1)


async def test_a_lapsed_lease_lets_exactly_one_waiter_take_over(
    redis_client: Redis, namespace: str
) -> None:
    store = IdempotencyStore(redis_client, namespace=namespace, lease_ms=short_lease_ms)
    tenant_id, key, fp = fresh_tenant_id(), fresh_key(), request_fingerprint()
    # The first owner claims the key and crashes without completing or abandoning.
    assert await store.begin(tenant_id=tenant_id, key=key, request_fingerprint=fp) is None
    waiters = [
        asyncio.create_task(store.begin(tenant_id=tenant_id, key=key, request_fingerprint=fp))
        for _ in range(concurrent_requests)
    ]
    done, waiting = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    assert [task.result() for task in done] == [None]
    # The new owner finishes well within its own lease; everyone else replays its answer.
    await store.complete(tenant_id=tenant_id, key=key, request_fingerprint=fp, response=created)
    assert await asyncio.gather(*waiting) == [created] * (concurrent_requests - 1)


async def test_an_in_progress_record_is_a_lease(
    store: IdempotencyStore, redis_client: Redis, namespace: str
) -> None:
    tenant_id, key, fp = fresh_tenant_id(), fresh_key(), request_fingerprint()
    await store.begin(tenant_id=tenant_id, key=key, request_fingerprint=fp)
    expiry_ms = await redis_client.pttl(f"{namespace}:idem:{tenant_id}:{key}")
    assert 0 < expiry_ms <= lease_ms_default


async def test_a_waiter_gives_up_after_its_timeout(redis_client: Redis, namespace: str) -> None:
    store = IdempotencyStore(redis_client, namespace=namespace, wait_timeout_ms=50)
    tenant_id, key, fp = fresh_tenant_id(), fresh_key(), request_fingerprint()
    await store.begin(tenant_id=tenant_id, key=key, request_fingerprint=fp)
    with pytest.raises(IdempotencyInProgressTimeout):
        await store.begin(tenant_id=tenant_id, key=key, request_fingerprint=fp)


async def test_abandon_releases_only_its_own_in_progress_claim(store: IdempotencyStore) -> None:
    tenant_id, key, fp = fresh_tenant_id(), fresh_key(), request_fingerprint()
    other = request_fingerprint(b"other")
    await store.begin(tenant_id=tenant_id, key=key, request_fingerprint=fp)
    await store.abandon(tenant_id=tenant_id, key=key, request_fingerprint=other)
    with pytest.raises(IdempotencyConflict):
        await store.begin(tenant_id=tenant_id, key=key, request_fingerprint=other)
    await store.abandon(tenant_id=tenant_id, key=key, request_fingerprint=fp)
    assert await store.begin(tenant_id=tenant_id, key=key, request_fingerprint=other) is None
    await store.complete(tenant_id=tenant_id, key=key, request_fingerprint=other, response=created)
    await store.abandon(tenant_id=tenant_id, key=key, request_fingerprint=other)
    assert await store.begin(tenant_id=tenant_id, key=key, request_fingerprint=other) == created


async def test_complete_keeps_the_first_response_of_its_own_request(
    store: IdempotencyStore,
) -> None:
    tenant_id, key, fp = fresh_tenant_id(), fresh_key(), request_fingerprint()
    other = request_fingerprint(b"other")
    later = StoredResponse(status_code=500, body=b"{}", content_type="application/problem+json")
    await store.begin(tenant_id=tenant_id, key=key, request_fingerprint=fp)
    await store.complete(tenant_id=tenant_id, key=key, request_fingerprint=other, response=later)
    await store.complete(tenant_id=tenant_id, key=key, request_fingerprint=fp, response=created)
    await store.complete(tenant_id=tenant_id, key=key, request_fingerprint=fp, response=later)
    assert await store.begin(tenant_id=tenant_id, key=key, request_fingerprint=fp) == created


async def test_a_response_outliving_its_lease_is_still_kept(
    redis_client: Redis, namespace: str
) -> None:
    store = IdempotencyStore(redis_client, namespace=namespace, lease_ms=1)
    tenant_id, key, fp = fresh_tenant_id(), fresh_key(), request_fingerprint()
    await store.begin(tenant_id=tenant_id, key=key, request_fingerprint=fp)
    await asyncio.sleep(0.05)
    await store.complete(tenant_id=tenant_id, key=key, request_fingerprint=fp, response=created)
    assert await store.begin(tenant_id=tenant_id, key=key, request_fingerprint=fp) == created


@pytest.mark.parametrize(
    "key",
    ["", "x" * (key_length_max + 1), "has space", "tab\there", "caf\u00e9", "line\nbreak"],
)
async def test_malformed_keys_are_refused(store: IdempotencyStore, key: str) -> None:
    with pytest.raises(ValueError, match="Idempotency-Key"):
        await store.begin(tenant_id=1, key=key, request_fingerprint=request_fingerprint())


async def test_the_longest_visible_ascii_key_is_accepted(store: IdempotencyStore) -> None:
    key = ("!~" * key_length_max)[:key_length_max]
    begun = await store.begin(
        tenant_id=fresh_tenant_id(), key=key, request_fingerprint=request_fingerprint()
    )
    assert begun is None


async def test_bad_arguments_are_refused_by_field(
    store: IdempotencyStore, redis_client: Redis
) -> None:
    with pytest.raises(ValueError, match="request_fingerprint"):
        await store.begin(tenant_id=1, key=fresh_key(), request_fingerprint=b"short")
    with pytest.raises(ValueError, match="tenant_id"):
        await store.begin(tenant_id=0, key=fresh_key(), request_fingerprint=request_fingerprint())
    bad_status = StoredResponse(status_code=99, body=b"", content_type="text/plain")
    with pytest.raises(ValueError, match="status_code"):
        await store.complete(
            tenant_id=1,
            key=fresh_key(),
            request_fingerprint=request_fingerprint(),
            response=bad_status,
        )
    with pytest.raises(ValueError, match="lease_ms"):
        IdempotencyStore(redis_client, lease_ms=0)


async def test_a_decoding_client_is_refused() -> None:
    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        with pytest.raises(ValueError, match="decode_responses"):
            IdempotencyStore(client)
    finally:
        await client.aclose()
