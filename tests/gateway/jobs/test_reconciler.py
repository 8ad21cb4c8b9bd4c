"""The reconciler settles what a crash left between Postgres and the ledger: a hold row
whose ledger transfer never happened is marked `abandoned`; one whose transfer exists gets
its creation event; rows younger than the settling delay are left alone; a payout
reservation without a transfer row (the gateway died in between) is voided once an
`abandoned` row holds its id, so a late write of the real row does nothing, while a
reservation whose row exists, or whose tenant this database does not know, is left alone.
A pass scans until it has caught up, and a scan never splits the rows of one insert. The
passes of several workers take turns on a lease, and without Redis a pass still repairs
what needs only Postgres and the ledger."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis_asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gateway.http.ids import as_uuid
from gateway.jobs import reconciler
from gateway.jobs.reconciler import reconcile_in_turn, reconcile_once, reconcile_reservations
from gateway.jobs.worker import reconciliation
from gateway.runtime import Runtime
from gateway.transfers.records import transfer_insert
from ledger.payouts import Payout, Payouts, PayoutState
from ledger.statements import Statements
from ledger.transfers import Leg, new_object_id, transfer_id
from tests.gateway.e2e.conftest import free_port
from tests.postgres import migrated_runtime


async def test_rows_left_mid_way_are_settled(empty_database: str, tmp_path: Path) -> None:
    services = await migrated_runtime(empty_database, tmp_path, {"KOVRA_CURRENCIES": "EUR"})
    try:
        tenant_id = 7
        await services.ledger.open_tenant_accounts(tenant_id)
        await services.ledger.deposit(
            tenant_id=tenant_id, deposit_id=new_object_id(), currency_code="EUR", amount_minor=1_000
        )
        held, lost, young = new_object_id(), new_object_id(), new_object_id()
        await services.ledger.hold(
            tenant_id=tenant_id, hold_id=held, currency_code="EUR", amount_minor=100
        )
        ages = (
            (held, timedelta(minutes=2)),
            (lost, timedelta(minutes=2)),
            (young, timedelta(seconds=1)),
        )
        for object_id, age in ages:
            await services.pool.execute(
                """INSERT INTO holds (id, compliance_region, tenant_id, currency, amount_minor,
                                      timeout_seconds, created_at)
                   VALUES ($1, 'EU', $2, 'EUR', 100, 0, now() - $3::interval)""",
                uuid.UUID(int=object_id),
                tenant_id,
                age,
            )
        assert await reconcile_once(reconciliation(services)) == 1
        await services.writer.drain()
        states = {
            row["id"].int: row["rejected_code"]
            for row in await services.pool.fetch("SELECT id, rejected_code FROM holds")
        }
        assert states == {held: None, lost: "abandoned", young: None}
        events = await services.pool.fetch("SELECT id, type, object_id, payload FROM events")
        assert [(e["id"].int, e["type"], e["object_id"].int) for e in events] == [
            (transfer_id(object_id=held, leg=Leg.HOLD), "hold.created", held)
        ]
        assert json.loads(events[0]["payload"])["recovered"] is True
        # A second pass has nothing left to do: the watermark moved past both rows.
        assert await reconcile_once(reconciliation(services)) == 0
    finally:
        await services.close()


async def test_a_scan_never_splits_the_rows_of_one_insert(
    empty_database: str, tmp_path: Path
) -> None:
    """Rows written by one batched insert share their created_at. A full scan that ends in
    the middle of such a group stops before it, so the next scan (after the watermark)
    reads the group whole: with scans of three, two older rows and a group of two sharing
    one moment are all settled."""
    services = await migrated_runtime(empty_database, tmp_path, {"KOVRA_CURRENCIES": "EUR"})
    try:
        moments = [timedelta(minutes=4), timedelta(minutes=3), timedelta(minutes=2)]
        lost = [new_object_id() for _ in range(4)]
        for object_id, age in zip(lost, [*moments, moments[-1]], strict=True):
            await services.pool.execute(
                """INSERT INTO holds (id, compliance_region, tenant_id, currency, amount_minor,
                                      timeout_seconds, created_at)
                   VALUES ($1, 'EU', 7, 'EUR', 100, 0,
                           date_trunc('second', now()) - $2::interval)""",
                uuid.UUID(int=object_id),
                age,
            )
        assert await reconcile_once(reconciliation(services), scan_rows=3) == 4
        codes = {row["rejected_code"] for row in await services.pool.fetch("SELECT * FROM holds")}
        assert codes == {"abandoned"}
    finally:
        await services.close()


async def test_orphan_reservations_are_voided(empty_database: str, tmp_path: Path) -> None:
    services = await _reconciling(empty_database, tmp_path, currencies="EUR,IDR")
    try:
        tenant_id = await _funded_tenant(services)
        await services.ledger.fund_liquidity(
            funding_id=new_object_id(), currency_code="IDR", amount_minor=10**12
        )
        payouts = Payouts(services.ledger)
        orphan = Payout(
            payout_id=new_object_id(),
            tenant_id=tenant_id,
            source_currency="EUR",
            source_amount_minor=1_000,
            fee_minor=15,
            target_currency="IDR",
            target_amount_minor=17_000_000,
        )
        await payouts.reserve(orphan)
        await asyncio.sleep(1.2)  # Older than KOVRA_RECONCILE_AFTER_SECONDS.
        assert await reconcile_reservations(reconciliation(services)) == 1
        assert await payouts.state(orphan) is PayoutState.ABORTED
        wallet = (await Statements(services.ledger).balances(tenant_id))[0]
        assert (wallet.currency, wallet.posted, wallet.pending) == ("EUR", 10_000, 0)
        assert await reconcile_reservations(reconciliation(services)) == 0
        # A late retry's row (same id) loses to the tombstone: the void stands alone.
        await services.writer.write_together([(transfer_insert, _transfer_row(orphan))])
        assert await _statuses(services) == {orphan.payout_id: "abandoned"}
    finally:
        await services.close()


async def test_a_recorded_reservation_stays_and_a_claimed_one_is_voided(
    empty_database: str, tmp_path: Path
) -> None:
    services = await _reconciling(empty_database, tmp_path)
    try:
        tenant_id = await _funded_tenant(services)
        # The second is a tenant this database does not know (a cluster shared with another
        # deployment): its ledger accounts exist, its tenant row does not.
        stranger_id = tenant_id + 1_000
        await _fund(services, stranger_id)
        payouts = Payouts(services.ledger)
        recorded, claimed, stranger = (
            _eur_payout(tenant_id, 1_000),
            _eur_payout(tenant_id, 1_000),
            _eur_payout(stranger_id, 1_000),
        )
        for payout in (recorded, claimed, stranger):
            await payouts.reserve(payout)
        await services.writer.write_together([(transfer_insert, _transfer_row(recorded))])
        # An earlier pass claimed this id, then died before it voided the reservation.
        assert await reconciler._abandon(reconciliation(services), claimed, region="EU")
        await asyncio.sleep(1.2)
        assert await reconcile_reservations(reconciliation(services)) == 1
        assert await payouts.state(recorded) is PayoutState.RESERVED
        assert await payouts.state(claimed) is PayoutState.ABORTED
        assert await payouts.state(stranger) is PayoutState.RESERVED
        assert await _statuses(services) == {
            recorded.payout_id: "processing",
            claimed.payout_id: "abandoned",
        }
    finally:
        await services.close()


async def test_one_pass_catches_up_over_several_scans(empty_database: str, tmp_path: Path) -> None:
    """A pass keeps scanning until it has caught up, rather than one scan per pass: with
    scans of two, five orphans behind the delay are all voided by one call."""
    services = await _reconciling(empty_database, tmp_path)
    try:
        tenant_id = await _funded_tenant(services)
        payouts = Payouts(services.ledger)
        orphans = [_eur_payout(tenant_id, 100) for _ in range(5)]
        for orphan in orphans:
            await payouts.reserve(orphan)
        await asyncio.sleep(1.2)
        assert await reconcile_reservations(reconciliation(services), scan_rows=2) == 5
        for orphan in orphans:
            assert await payouts.state(orphan) is PayoutState.ABORTED
    finally:
        await services.close()


async def test_passes_of_several_workers_take_turns(empty_database: str, tmp_path: Path) -> None:
    """Two passes started together: one settles, the other reads nothing and says so; a
    pass while another worker's lease is held does nothing; the lease goes with the pass."""
    services = await _reconciling(empty_database, tmp_path)
    try:
        tenant_id = await _funded_tenant(services)
        payouts = Payouts(services.ledger)
        first, second = _eur_payout(tenant_id, 100), _eur_payout(tenant_id, 100)
        await payouts.reserve(first)
        await asyncio.sleep(1.2)
        together = await asyncio.gather(
            *(reconcile_in_turn(reconciliation(services)) for _ in range(2))
        )
        assert sorted(together, key=lambda settled: settled is not None) == [None, 1]
        assert await services.redis.exists(reconciler.turn_lease_key) == 0

        await payouts.reserve(second)
        await asyncio.sleep(1.2)
        await services.redis.set(reconciler.turn_lease_key, "another worker's pass")
        assert await reconcile_in_turn(reconciliation(services)) is None
        assert await payouts.state(second) is PayoutState.RESERVED
        assert await services.redis.get(reconciler.turn_lease_key) == b"another worker's pass"
        await services.redis.delete(reconciler.turn_lease_key)
        assert await reconcile_in_turn(reconciliation(services)) == 1
        assert await payouts.state(second) is PayoutState.ABORTED
    finally:
        await services.close()


async def test_without_redis_the_pass_still_repairs_postgres_and_the_ledger(
    empty_database: str, tmp_path: Path
) -> None:
    """No lease can be taken while Redis is down, and the pass runs without one: the
    reservation is voided (its admission's give-back, which needs Redis, then fails, and
    the next pass does it)."""
    services = await _reconciling(empty_database, tmp_path)
    try:
        tenant_id = await _funded_tenant(services)
        payouts = Payouts(services.ledger)
        orphan = _eur_payout(tenant_id, 100)
        await payouts.reserve(orphan)
        await asyncio.sleep(1.2)
        reachable, services.redis = (
            services.redis,
            redis_asyncio.Redis(port=free_port(), retry=Retry(NoBackoff(), 0)),
        )
        try:
            with pytest.raises(redis.exceptions.ConnectionError):
                await reconcile_in_turn(reconciliation(services))
        finally:
            await services.redis.aclose()
            services.redis = reachable
        assert await payouts.state(orphan) is PayoutState.ABORTED
        # The failed pass kept its watermark: with Redis back, the next pass goes over the
        # same reservation again (its void already done) and completes the give-back.
        assert await reconcile_in_turn(reconciliation(services)) == 1
        assert await payouts.state(orphan) is PayoutState.ABORTED
    finally:
        await services.close()


async def _reconciling(empty_database: str, tmp_path: Path, *, currencies: str = "EUR") -> Runtime:
    """Runtime whose reconciler settles what is older than a second."""
    return await migrated_runtime(
        empty_database,
        tmp_path,
        {"KOVRA_CURRENCIES": currencies, "KOVRA_RECONCILE_AFTER_SECONDS": "1"},
    )


async def _funded_tenant(services: Runtime) -> int:
    """A tenant row in region EU (the reconciler reads a tenant's region from it), with
    EUR 100.00 in its wallet."""
    tenant_id: int = await services.pool.fetchval(
        """INSERT INTO tenants (name, compliance_region, pricing_policy_id, limit_policy_id)
           SELECT 'reconciled', 'EU', (SELECT min(id) FROM pricing_policies),
                  (SELECT min(id) FROM limit_policies)
           RETURNING id"""
    )
    await _fund(services, tenant_id)
    return tenant_id


async def _fund(services: Runtime, tenant_id: int) -> None:
    await services.ledger.open_tenant_accounts(tenant_id)
    await services.ledger.deposit(
        tenant_id=tenant_id, deposit_id=new_object_id(), currency_code="EUR", amount_minor=10_000
    )


def _eur_payout(tenant_id: int, amount_minor: int) -> Payout:
    return Payout(
        payout_id=new_object_id(),
        tenant_id=tenant_id,
        source_currency="EUR",
        source_amount_minor=amount_minor,
        fee_minor=0,
        target_currency="EUR",
        target_amount_minor=amount_minor,
    )


def _transfer_row(payout: Payout) -> tuple[Any, ...]:
    """The row a transfer request writes for `payout` (tenant in region EU)."""
    now = datetime.now(tz=UTC)
    return (
        as_uuid(payout.payout_id),
        "EU",
        payout.tenant_id,
        as_uuid(new_object_id()),
        as_uuid(new_object_id()),
        "late",
        payout.source_currency,
        payout.source_amount_minor,
        payout.fee_minor,
        payout.target_currency,
        payout.target_amount_minor,
        "1",
        "sepa_instant",
        "processing",
        now,
        now,
    )


async def _statuses(services: Runtime) -> dict[int, str]:
    rows = await services.pool.fetch("SELECT id, status FROM transfers")
    return {row["id"].int: row["status"] for row in rows}
