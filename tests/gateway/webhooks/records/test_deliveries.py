"""Deliveries in Postgres. Writing an event creates its deliveries in the same statement
(for the tenant's live endpoints whose filter takes it, never another tenant's); a claim is
exclusive however many workers claim at once and respects each endpoint's own bound (a
changed bound from the next claim on), counting the live leases of every worker, at once and
in concurrent claims (a lease that ran out counts no more, and an outcome ends its lease),
shares each bound evenly among the workers seen lately (one unseen for two leases, or
stopped, counts no more), and reads no more rows than its scan bound however long the
backlog; an
outcome for a superseded attempt changes nothing; redelivery revives dead letters; a
deleted endpoint's pending deliveries are cancelled."""

from __future__ import annotations

import asyncio
import datetime
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.tenancy.records import create_tenant
from gateway.webhooks import catalog
from gateway.webhooks.records import deliveries
from gateway.webhooks.records.deliveries import Outcome
from gateway.webhooks.records.endpoints import delete_endpoint, update_endpoint
from tests.gateway.webhooks.conftest import add_endpoint, add_events


async def delivery_pairs(pool: asyncpg.Pool) -> set[tuple[uuid.UUID, uuid.UUID]]:
    rows = await pool.fetch("SELECT event_id, endpoint_id FROM webhook_deliveries")
    return {(row["event_id"], row["endpoint_id"]) for row in rows}


async def claim(
    pool: asyncpg.Pool,
    *,
    limit: int,
    worker_id: uuid.UUID | None = None,
    in_flight_by_endpoint: dict[uuid.UUID, int] | None = None,
    lease_seconds: float = 60,
) -> list[deliveries.Claimed]:
    """A claim by `worker_id` (a worker of its own when not given), which has
    `in_flight_by_endpoint` attempts of its own in flight."""
    return await deliveries.claim(
        pool,
        worker_id=uuid.uuid4() if worker_id is None else worker_id,
        limit=limit,
        in_flight_by_endpoint=in_flight_by_endpoint or {},
        lease_seconds=lease_seconds,
    )


async def test_events_fan_out_to_the_tenants_matching_live_endpoints(
    pool: asyncpg.Pool, tenant_id: int
) -> None:
    everything = await add_endpoint(pool, tenant_id, "http://a.test/", ["*"])
    transfers = await add_endpoint(pool, tenant_id, "http://b.test/", ["transfer.*"])
    completed = await add_endpoint(pool, tenant_id, "http://c.test/", ["transfer.completed"])
    deleted = await add_endpoint(pool, tenant_id, "http://d.test/", ["*"])
    await delete_endpoint(pool, tenant_id=tenant_id, endpoint_id=deleted.id)
    other = await create_tenant(pool, name="other", tier="growth", compliance_region="EU")
    await add_endpoint(pool, other.id, "http://other.test/", ["*"])

    deposit, submitted, done = await add_events(
        pool, tenant_id, ["deposit.posted", "transfer.submitted", "transfer.completed"]
    )

    assert await delivery_pairs(pool) == {
        (deposit, everything.id),
        (submitted, everything.id),
        (submitted, transfers.id),
        (done, everything.id),
        (done, transfers.id),
        (done, completed.id),
    }
    ids = {row["id"] for row in await pool.fetch("SELECT id FROM webhook_deliveries")}
    assert deliveries.delivery_id(event_id=done, endpoint_id=completed.id) in ids


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    enabled=st.lists(st.sampled_from(catalog.filters), min_size=1, max_size=4),
    event_type=st.sampled_from(catalog.event_types),
)
async def test_the_database_filter_agrees_with_the_catalog(
    pool: asyncpg.Pool, tenant_id: int, enabled: list[str], event_type: str
) -> None:
    endpoint = await add_endpoint(pool, tenant_id, "http://x.test/", enabled)
    (event,) = await add_events(pool, tenant_id, [event_type])
    fanned = (event, endpoint.id) in await delivery_pairs(pool)
    # The database is shared by every example: leave no endpoint behind for the next.
    await delete_endpoint(pool, tenant_id=tenant_id, endpoint_id=endpoint.id)
    assert fanned == catalog.matches(enabled, event_type)


async def test_concurrent_claims_never_take_the_same_attempt(
    pool: asyncpg.Pool, tenant_id: int
) -> None:
    for number in range(4):
        await add_endpoint(pool, tenant_id, f"http://{number}.test/", in_flight_max=64)
    await add_events(pool, tenant_id, ["deposit.posted"] * 50)  # 200 deliveries.

    async def claimer() -> list[uuid.UUID]:
        taken: list[uuid.UUID] = []
        while batch := await claim(pool, limit=7):
            taken += [claimed.id for claimed in batch]
        return taken

    results = await asyncio.gather(*(claimer() for _ in range(4)))
    everything = [claimed for result in results for claimed in result]
    assert len(everything) == len(set(everything)) == 200
    assert await pool.fetchval("SELECT count(*) FROM webhook_deliveries WHERE attempt = 1") == 200


async def test_a_claim_holds_to_each_endpoints_own_bound(
    pool: asyncpg.Pool, tenant_id: int
) -> None:
    busy = await add_endpoint(pool, tenant_id, "http://busy.test/", in_flight_max=3)
    quiet = await add_endpoint(pool, tenant_id, "http://quiet.test/", in_flight_max=5)
    default = await add_endpoint(pool, tenant_id, "http://default.test/")
    await add_events(pool, tenant_id, ["deposit.posted"] * 12)

    # The worker has two attempts of its own in flight to `busy`: one place is left there.
    claimed = await claim(pool, limit=100, in_flight_by_endpoint={busy.id: 2})
    assert per_endpoint(claimed) == {busy.id: 1, quiet.id: 5, default.id: 8}


async def test_a_changed_bound_holds_from_the_next_claim(
    pool: asyncpg.Pool, tenant_id: int
) -> None:
    endpoint = await add_endpoint(pool, tenant_id, "http://a.test/", in_flight_max=2)
    await add_events(pool, tenant_id, ["deposit.posted"] * 10)
    worker_id = uuid.uuid4()
    assert len(await claim(pool, worker_id=worker_id, limit=100)) == 2

    await update_endpoint(
        pool, tenant_id=tenant_id, endpoint_id=endpoint.id, changes={"in_flight_max": 6}
    )
    more = await claim(pool, worker_id=worker_id, limit=100, in_flight_by_endpoint={endpoint.id: 2})
    assert per_endpoint(more) == {endpoint.id: 4}
    # Lowered below what is in flight, nothing more starts until attempts end.
    await update_endpoint(
        pool, tenant_id=tenant_id, endpoint_id=endpoint.id, changes={"in_flight_max": 1}
    )
    assert await claim(pool, limit=100) == []


def per_endpoint(claimed: list[deliveries.Claimed]) -> Counter[uuid.UUID]:
    return Counter(attempt.endpoint_id for attempt in claimed)


async def test_the_per_endpoint_bound_counts_other_workers_leases(
    pool: asyncpg.Pool, tenant_id: int
) -> None:
    busy = await add_endpoint(pool, tenant_id, "http://busy.test/", in_flight_max=3)
    await add_events(pool, tenant_id, ["deposit.posted"] * 10)
    first, second = uuid.uuid4(), uuid.uuid4()

    taken = await claim(pool, worker_id=first, limit=100)
    assert per_endpoint(taken) == {busy.id: 3}
    # A worker's own attempts are bounded by its own count, not by its leases: one of its
    # three ended (its outcome still queued), so it may start one more.
    mine = await claim(pool, worker_id=first, limit=100, in_flight_by_endpoint={busy.id: 2})
    assert per_endpoint(mine) == {busy.id: 1}
    assert await claim(pool, worker_id=second, limit=100) == []

    # Outcomes end leases: with one of the first worker's attempts left, the other may
    # start two (its share of three between two workers, too).
    await deliveries.record_outcomes(
        pool,
        [
            outcome(taken[0], status="pending"),
            outcome(taken[1], status="delivered"),
            outcome(taken[2], status="dead"),
        ],
    )
    assert per_endpoint(await claim(pool, worker_id=second, limit=100)) == {busy.id: 2}


async def unseen_for(pool: asyncpg.Pool, worker_id: uuid.UUID, *, seconds: float) -> None:
    """As if the worker's last claim was `seconds` ago."""
    await pool.execute(
        "UPDATE webhook_workers SET seen_at = now() - make_interval(secs => $2) WHERE id = $1",
        worker_id,
        seconds,
    )


async def test_live_workers_share_each_bound_evenly(pool: asyncpg.Pool, tenant_id: int) -> None:
    even = await add_endpoint(pool, tenant_id, "http://even.test/", in_flight_max=8)
    odd = await add_endpoint(pool, tenant_id, "http://odd.test/", in_flight_max=3)
    await add_events(pool, tenant_id, ["deposit.posted"] * 20)
    first, second = uuid.uuid4(), uuid.uuid4()
    # The second worker is seen (it claims while the first has nothing in flight elsewhere),
    # and the bound is split: half of eight each, and two of three, rounded up, at most.
    seen = await claim(pool, worker_id=second, limit=1)
    assert len(seen) == 1
    taken = await claim(pool, worker_id=first, limit=100)
    assert per_endpoint(taken) == {even.id: 4, odd.id: 2}
    others = await claim(
        pool, worker_id=second, limit=100, in_flight_by_endpoint=per_endpoint(seen)
    )
    assert per_endpoint(seen + others) == {even.id: 4, odd.id: 1}


async def test_a_worker_unseen_for_two_leases_or_stopped_leaves_the_shares(
    pool: asyncpg.Pool, tenant_id: int
) -> None:
    endpoint = await add_endpoint(pool, tenant_id, "http://a.test/", in_flight_max=8)
    await add_events(pool, tenant_id, ["deposit.posted"] * 30)
    gone, stopped, remaining = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for worker_id in (gone, stopped):
        # Seen, then their attempts end (their outcomes end the leases).
        done = await claim(pool, worker_id=worker_id, limit=1)
        await deliveries.record_outcomes(pool, [outcome(done[0], status="delivered")])
    lease_seconds = 60.0
    await unseen_for(pool, gone, seconds=deliveries.worker_live_leases * lease_seconds + 1)
    await deliveries.forget_worker(pool, worker_id=stopped)
    taken = await claim(pool, worker_id=remaining, limit=100, lease_seconds=lease_seconds)
    assert per_endpoint(taken) == {endpoint.id: 8}


async def test_a_lease_that_ran_out_no_longer_counts(pool: asyncpg.Pool, tenant_id: int) -> None:
    endpoint = await add_endpoint(pool, tenant_id, "http://a.test/", in_flight_max=2)
    await add_events(pool, tenant_id, ["deposit.posted"] * 5)
    dead_worker = uuid.uuid4()
    dead = await claim(pool, worker_id=dead_worker, limit=100, lease_seconds=0)
    assert len(dead) == 2
    # The worker that held them died: its leases no longer hold places at the endpoint, and
    # (two leases on) it no longer takes a share of the bound either.
    await unseen_for(pool, dead_worker, seconds=deliveries.worker_live_leases * 60.0 + 1)
    again = await claim(pool, limit=100, lease_seconds=60.0)
    assert per_endpoint(again) == {endpoint.id: 2}


async def test_concurrent_claims_hold_the_bound_together(
    pool: asyncpg.Pool, tenant_id: int
) -> None:
    endpoint = await add_endpoint(pool, tenant_id, "http://a.test/", in_flight_max=3)
    await add_events(pool, tenant_id, ["deposit.posted"] * 40)

    async def rounds_of_claims() -> list[deliveries.Claimed]:
        worker_id = uuid.uuid4()
        taken: list[deliveries.Claimed] = []
        for _ in range(5):
            # As a worker does: its own attempts in flight (none ends here) bound it too.
            mine = {endpoint.id: len(taken)} if taken else {}
            taken += await claim(pool, worker_id=worker_id, limit=100, in_flight_by_endpoint=mine)
        return taken

    results = await asyncio.gather(*(rounds_of_claims() for _ in range(6)))
    everything = [attempt for result in results for attempt in result]
    assert per_endpoint(everything) == {endpoint.id: 3}
    leased = await pool.fetchval(
        "SELECT count(*) FROM webhook_deliveries WHERE leased_until > now()"
    )
    assert leased == 3


def outcome(claimed: deliveries.Claimed, *, status: str, attempt: int | None = None) -> Outcome:
    retry_at = datetime.datetime.now(tz=datetime.UTC) if status == "pending" else None
    return Outcome(
        id=claimed.id,
        attempt=claimed.attempt if attempt is None else attempt,
        status=status,
        next_attempt_at=retry_at,
        outcome="delivered" if status == "delivered" else "http_error",
        status_code=200 if status == "delivered" else 500,
        error=None if status == "delivered" else "answered 500",
        duration_ms=3,
    )


async def test_an_outcome_for_a_superseded_attempt_changes_nothing(
    pool: asyncpg.Pool, tenant_id: int
) -> None:
    await add_endpoint(pool, tenant_id, "http://a.test/")
    await add_events(pool, tenant_id, ["deposit.posted"])
    (first,) = await claim(pool, limit=1, lease_seconds=0)
    (second,) = await claim(pool, limit=1)  # The first lease ran out; a second worker retries.
    assert (first.attempt, second.attempt) == (1, 2)
    assert first.id == second.id

    assert await deliveries.record_outcomes(pool, [outcome(first, status="dead")]) == 0
    assert await deliveries.record_outcomes(pool, [outcome(second, status="delivered")]) == 1
    row = await pool.fetchrow("SELECT status, last_status_code FROM webhook_deliveries")
    assert row is not None
    assert (row["status"], row["last_status_code"]) == ("delivered", 200)
    attempts = await pool.fetch("SELECT attempt FROM webhook_attempts ORDER BY attempt")
    assert [a["attempt"] for a in attempts] == [1, 2]


async def test_redelivery_revives_a_dead_letter_with_a_fresh_round(
    pool: asyncpg.Pool, tenant_id: int
) -> None:
    endpoint = await add_endpoint(pool, tenant_id, "http://a.test/", ["transfer.*"])
    (event,) = await add_events(pool, tenant_id, ["transfer.completed"])
    (claimed,) = await claim(pool, limit=1)
    await deliveries.record_outcomes(pool, [outcome(claimed, status="dead")])
    late = await add_endpoint(pool, tenant_id, "http://late.test/", ["transfer.completed"])
    await add_endpoint(pool, tenant_id, "http://holds.test/", ["hold.*"])

    revived = await deliveries.redeliver(
        pool,
        tenant_id=tenant_id,
        event_id=event,
        event_type="transfer.completed",
        endpoint_id=None,
    )

    assert {(r.endpoint_id, r.status, r.attempt - r.round_base) for r in revived} == {
        (endpoint.id, "pending", 0),
        (late.id, "pending", 0),
    }
    again = await claim(pool, limit=10)
    assert {(c.endpoint_id, c.round_attempt) for c in again} == {(endpoint.id, 1), (late.id, 1)}


async def test_deleting_an_endpoint_cancels_what_it_had_pending(
    pool: asyncpg.Pool, tenant_id: int
) -> None:
    endpoint = await add_endpoint(pool, tenant_id, "http://a.test/")
    await add_events(pool, tenant_id, ["hold.created", "hold.voided"])
    await delete_endpoint(pool, tenant_id=tenant_id, endpoint_id=endpoint.id)
    statuses = await pool.fetch("SELECT status FROM webhook_deliveries")
    assert [row["status"] for row in statuses] == ["cancelled", "cancelled"]
    assert await claim(pool, limit=10) == []


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


async def test_a_claim_reads_no_more_than_its_scan_bound_whatever_the_backlog(
    pool: asyncpg.Pool, tenant_id: int
) -> None:
    # A backlog of two and a half times the scan bound, over two endpoints. The claim used to
    # number every due delivery of the backlog before keeping the oldest: its cost grew with
    # the backlog (about 100 ms a claim at 100,000), and claims take turns.
    backlog = deliveries.claim_scan_max * 5 // 2
    for number in range(2):
        await add_endpoint(pool, tenant_id, f"http://{number}.test/")
    await add_events(pool, tenant_id, ["deposit.posted"] * (backlog // 2))
    await pool.execute("ANALYZE webhook_deliveries")
    async with pool.acquire() as connection:
        transaction = connection.transaction()
        await transaction.start()
        try:
            # EXPLAIN ANALYZE runs the claim; the rollback undoes it.
            explained = await connection.fetchval(
                f"EXPLAIN (ANALYZE, FORMAT JSON) {deliveries._claim}",
                8,
                [],
                [],
                60.0,
                deliveries.claim_scan_max,
                uuid.uuid4(),
                120.0,
            )
        finally:
            await transaction.rollback()
    plan = json.loads(explained)[0]["Plan"]
    read = max(node["Actual Rows"] * node["Actual Loops"] for node in plan_nodes(plan))
    assert read <= deliveries.claim_scan_max, json.dumps(plan)[:2000]
