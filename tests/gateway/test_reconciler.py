"""The reconciler settles what a crash left between Postgres and the ledger: a hold row
whose ledger transfer never happened is marked `abandoned`; one whose transfer exists gets
its creation event; rows younger than the settling delay are left alone; a payout
reservation without a transfer row (the gateway died in between) is voided."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from pathlib import Path

from gateway.reconciler import reconcile_once, reconcile_reservations
from ledger.payouts import Payout, Payouts, PayoutState
from ledger.transfers import Leg, new_object_id, transfer_id
from tests.gateway.conftest import migrated_services


async def test_rows_left_mid_way_are_settled(empty_database: str, tmp_path: Path) -> None:
    services = await migrated_services(empty_database, tmp_path, {"KOVRA_CURRENCIES": "EUR"})
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
        assert await reconcile_once(services) == 1
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
        assert await reconcile_once(services) == 0
    finally:
        await services.close()


async def test_orphan_reservations_are_voided(empty_database: str, tmp_path: Path) -> None:
    services = await migrated_services(
        empty_database,
        tmp_path,
        {"KOVRA_CURRENCIES": "EUR,IDR", "KOVRA_RECONCILE_AFTER_SECONDS": "1"},
    )
    try:
        tenant_id = 9
        await services.ledger.open_tenant_accounts(tenant_id)
        await services.ledger.deposit(
            tenant_id=tenant_id,
            deposit_id=new_object_id(),
            currency_code="EUR",
            amount_minor=10_000,
        )
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
        assert await reconcile_reservations(services) == 1
        assert await payouts.state(orphan) is PayoutState.ABORTED
        wallet = (await services.statements.balances(tenant_id))[0]
        assert (wallet.currency, wallet.posted, wallet.pending) == ("EUR", 10_000, 0)
        assert await reconcile_reservations(services) == 0
    finally:
        await services.close()
