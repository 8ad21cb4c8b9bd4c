"""The collections worker's passes against real Postgres, Redis, the embedded ledger and the
sandbox providers: pending mandates go to their provider in one call per provider and keep
the reference it gives; a run of due collections takes one call per provider and tenant and
sends a mandate's first collection as `first`, later ones as `recurring`; a collection whose
mandate stopped being active fails unsent; the provider is told of a deactivation; a mandate
pending too long, and a SEPA mandate unused for 36 months, expire with an event."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

import asyncpg
import pytest
from redis.asyncio import Redis

from gateway.collections.sealed import open_run_message
from gateway.collections.worker import CollectionsWorker
from rails.collections.provider import (
    CollectionRequest,
    CollectionRun,
    MandateAnswer,
    MandateProvider,
    MandateRequest,
)
from tests.gateway.collections.fixtures import Domain, make_domain, secret_box


class Counting:
    """A real sandbox provider, with a count of the calls made to it (not a mock: it answers
    what the sandbox answers)."""

    def __init__(self, inner: MandateProvider) -> None:
        self.inner = inner
        self.mandate_calls: list[int] = []
        self.collect_calls: list[list[CollectionRequest]] = []
        self.deactivated: list[str] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def create_mandates(self, requests: Sequence[MandateRequest]) -> list[MandateAnswer]:
        self.mandate_calls.append(len(requests))
        return await self.inner.create_mandates(requests)

    async def collect(self, requests: Sequence[CollectionRequest]) -> CollectionRun:
        self.collect_calls.append(list(requests))
        return await self.inner.collect(requests)

    async def deactivate_mandate(self, provider_reference: str) -> None:
        self.deactivated.append(provider_reference)
        await self.inner.deactivate_mandate(provider_reference)


@pytest.fixture
async def domain(pool: asyncpg.Pool, redis_client: Redis, namespace: str) -> Domain:
    made = await make_domain(pool, redis_client, namespace)
    made.providers["sepa_dd"] = Counting(made.providers["sepa_dd"])  # type: ignore[assignment]
    return made


def _worker(domain: Domain) -> CollectionsWorker:
    return CollectionsWorker(
        pool=domain.pool, providers=domain.providers, secret_box=secret_box, applier=domain.applier
    )


def _counting(domain: Domain) -> Counting:
    provider = domain.providers["sepa_dd"]
    assert isinstance(provider, Counting)
    return provider


async def test_pending_mandates_go_to_their_provider_in_one_call(domain: Domain) -> None:
    mandates = [await domain.mandate(status="pending") for _ in range(3)]
    await domain.pool.execute("UPDATE mandates SET provider_reference = NULL")
    assert await _worker(domain).submit_mandates() == 3
    assert _counting(domain).mandate_calls == [3]
    references = await domain.pool.fetch(
        "SELECT provider_reference FROM mandates WHERE id = ANY($1::uuid[])",
        [mandate.id for mandate in mandates],
    )
    assert all(row["provider_reference"].startswith("SBX-M-") for row in references)
    assert await _worker(domain).submit_mandates() == 0  # Parked until the notification.


async def _sandbox_active(domain: Domain) -> Domain:
    """A mandate active in Kovra and at the sandbox."""
    await domain.mandate(status="pending")
    await domain.pool.execute("UPDATE mandates SET provider_reference = NULL")
    await _worker(domain).submit_mandates()
    await domain.pool.execute("UPDATE mandates SET status = 'active'")
    return domain


async def _due(domain: Domain, amount_minor: int) -> None:
    (row,) = await domain.pool.fetch("SELECT * FROM mandates")
    mandate = await domain.read_mandate(row["id"])
    collection = await domain.collection(mandate, amount_minor)
    await domain.pool.execute(
        """UPDATE collections SET provider_reference = NULL, sequence_type = NULL,
                  submitted_at = NULL WHERE id = $1""",
        collection.id,
    )


async def test_a_run_sends_first_then_recurring_one_call_per_pass(domain: Domain) -> None:
    await _sandbox_active(domain)
    await _due(domain, 100)
    await _due(domain, 200)
    worker = _worker(domain)
    assert await worker.run_collections() == 1  # One collection per mandate per pass.
    assert await worker.run_collections() == 1
    calls = _counting(domain).collect_calls
    assert [[r.sequence_type for r in call] for call in calls] == [["first"], ["recurring"]]
    runs = await domain.pool.fetch("SELECT id, message_type, message FROM collection_runs")
    assert [run["message_type"] for run in runs] == ["pain.008", "pain.008"]
    opened = [open_run_message(secret_box, run["message"], run_id=run["id"]) for run in runs]
    assert all("pain.008" in message for message in opened)


async def test_a_collection_whose_mandate_stopped_fails_unsent(domain: Domain) -> None:
    await _sandbox_active(domain)
    await _due(domain, 300)
    await domain.pool.execute("UPDATE mandates SET status = 'deactivated'")
    assert await _worker(domain).run_collections() == 1
    assert _counting(domain).collect_calls == []
    (row,) = await domain.pool.fetch("SELECT status, failure_code FROM collections")
    assert (row["status"], row["failure_code"]) == ("failed", "mandate_inactive")


async def test_the_provider_is_told_of_a_deactivation_once(domain: Domain) -> None:
    mandate = await domain.mandate()
    await domain.pool.execute(
        "UPDATE mandates SET status = 'deactivated', deactivated_at = now() WHERE id = $1",
        mandate.id,
    )
    worker = _worker(domain)
    assert await worker.tell_deactivations() == 1
    assert await worker.tell_deactivations() == 0
    assert _counting(domain).deactivated == [mandate.provider_reference]


async def test_mandates_pending_too_long_or_unused_for_36_months_expire(domain: Domain) -> None:
    stale = await domain.mandate(status="pending")
    unused = await domain.mandate(status="active")
    fresh = await domain.mandate(status="active")
    long_ago = datetime.datetime.now(tz=datetime.UTC) - datetime.timedelta(days=3 * 365 + 40)
    await domain.pool.execute(
        "UPDATE mandates SET created_at = $2 WHERE id = ANY($1::uuid[])",
        [stale.id, unused.id],
        long_ago,
    )
    assert await _worker(domain).expire() == 2
    rows = await domain.pool.fetch("SELECT id, status FROM mandates")
    statuses = {row["id"]: row["status"] for row in rows}
    assert (statuses[stale.id], statuses[unused.id], statuses[fresh.id]) == (
        "expired",
        "expired",
        "active",
    )
    events = await domain.pool.fetch("SELECT object_id FROM events WHERE type = 'mandate.expired'")
    assert {row["object_id"] for row in events} == {stale.id, unused.id}
