"""Locked quotes are single use across processes: of 50 concurrent uses exactly one wins,
the winner may retry, expired and used quotes say so, and another tenant sees nothing. A
quote is stored with its expiry and TTL in one step, its record outliving it by the
configured grace, and quotes stored before they recorded their USD equivalent still read."""

from __future__ import annotations

import asyncio
import datetime

import msgspec
import pytest
from redis.asyncio import Redis

from fx.quotes import (
    LockedQuote,
    QuoteAlreadyUsed,
    QuoteExpired,
    QuoteNotFound,
    QuoteStore,
    record_grace_seconds_max,
    record_grace_seconds_min,
)
from ledger.invariants import InvariantViolation
from ledger.transfers import new_object_id

now = datetime.datetime.now(tz=datetime.UTC)


def _quote(tenant_id: int = 1, minutes: int = 10) -> LockedQuote:
    return LockedQuote(
        id=new_object_id(),
        tenant_id=tenant_id,
        source_currency="EUR",
        target_currency="IDR",
        source_amount=100_000,
        target_amount=1_739_809_782,
        fee_amount=146,
        rate="17398.0978260869",
        mid_rate="17663.0434782609",
        margin_bps=150,
        rate_observed_at=now,
        created_at=now,
        expires_at=now + datetime.timedelta(minutes=minutes),
    )


async def test_a_quote_is_used_once(redis_client: Redis, namespace: str) -> None:
    store = QuoteStore(redis_client, namespace=namespace)
    quote = await store.save(_quote())
    consumers = [new_object_id() for _ in range(50)]

    async def use(consumer: int) -> bool:
        try:
            await store.consume(tenant_id=1, quote_id=quote.id, consumer_id=consumer)
        except QuoteAlreadyUsed:
            return False
        return True

    outcomes = await asyncio.gather(*(use(c) for c in consumers))
    assert outcomes.count(True) == 1
    winner = consumers[outcomes.index(True)]
    assert await store.consume(tenant_id=1, quote_id=quote.id, consumer_id=winner) == quote
    state = await store.read(tenant_id=1, quote_id=quote.id)
    assert state is not None
    assert state.status == "used"


async def test_expired_unknown_and_foreign_quotes(redis_client: Redis, namespace: str) -> None:
    store = QuoteStore(redis_client, namespace=namespace)
    quote = await store.save(_quote(minutes=10))
    later = now + datetime.timedelta(minutes=11)
    with pytest.raises(QuoteExpired):
        await store.consume(tenant_id=1, quote_id=quote.id, consumer_id=5, now=later)
    with pytest.raises(QuoteNotFound):
        await store.consume(tenant_id=2, quote_id=quote.id, consumer_id=5)
    assert await store.read(tenant_id=2, quote_id=quote.id) is None
    with pytest.raises(QuoteNotFound):
        await store.consume(tenant_id=1, quote_id=new_object_id(), consumer_id=5)


async def test_saving_the_same_quote_id_keeps_the_first(
    redis_client: Redis, namespace: str
) -> None:
    store = QuoteStore(redis_client, namespace=namespace)
    first = await store.save(_quote())
    second = await store.save(msgspec.structs.replace(_quote(), id=first.id, source_amount=1))
    assert second == first
    ttl = await redis_client.ttl(f"{namespace}:quote:1:{first.id:032x}")
    assert 600 < ttl <= 600 + 86_400


async def test_a_saved_quote_has_its_expiry_and_ttl(redis_client: Redis, namespace: str) -> None:
    store = QuoteStore(redis_client, namespace=namespace)
    quote = await store.save(_quote(minutes=10))
    key = f"{namespace}:quote:1:{quote.id:032x}"
    stored = await redis_client.hget(key, "expires_at_ms")
    assert stored is not None
    assert int(stored) == int(quote.expires_at.timestamp() * 1000)
    assert 600 < await redis_client.ttl(key) <= 600 + 86_400


async def test_the_record_outlives_the_quote_by_the_configured_grace(
    redis_client: Redis, namespace: str
) -> None:
    """Production at high quote rates shortens the grace to bound Redis' memory; the record
    then lives the quote's lifetime plus that grace, and a grace out of bounds is a bug."""
    store = QuoteStore(redis_client, namespace=namespace, record_grace_seconds=3_600)
    quote = await store.save(_quote(minutes=10))
    assert 3_600 < await redis_client.ttl(f"{namespace}:quote:1:{quote.id:032x}") <= 600 + 3_600
    for grace in (record_grace_seconds_min - 1, record_grace_seconds_max + 1):
        with pytest.raises(InvariantViolation):
            QuoteStore(redis_client, namespace=namespace, record_grace_seconds=grace)


async def test_a_quote_stored_without_its_usd_equivalent_still_reads(
    redis_client: Redis, namespace: str
) -> None:
    """The record an earlier version wrote: the same JSON without `usd_equivalent_minor`."""
    store = QuoteStore(redis_client, namespace=namespace)
    quote = await store.save(msgspec.structs.replace(_quote(), usd_equivalent_minor=1_093))
    key = f"{namespace}:quote:1:{quote.id:032x}"
    earlier = msgspec.json.decode(await redis_client.hget(key, "quote") or b"")
    del earlier["usd_equivalent_minor"]
    await redis_client.hset(key, "quote", msgspec.json.encode(earlier))
    used = await store.consume(tenant_id=1, quote_id=quote.id, consumer_id=7)
    assert used == msgspec.structs.replace(quote, usd_equivalent_minor=None)
