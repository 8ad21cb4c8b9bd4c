"""A run's state machine against real Postgres, Redis, the embedded ledger, the sandbox
mandate provider and the sandbox partners: a full run lands to the minor unit in the wallet,
the buckets and the partners' settlement accounts, with every step and event; a replayed
provider notification, and two workers racing, give one run and one allocation; a partner
that refuses, one that never answers, and one that answers on the third send leave the
money where it belongs and pay nothing twice; a collection that fails and an allocation the
ledger refuses fail the run and move nothing more; a worker resumed after a crash between
the ledger and the rows finishes the run."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from gateway.orchestrations.worker import collection_id_for
from ledger.accounts import AccountType, tenant_account_id
from ledger.buckets import Delivery
from ledger.transfers import new_object_id
from rails.partners.partner import PartnerOrder
from rails.partners.sandbox import SandboxPartner
from tests.gateway.orchestrations.fixtures import Flow, Target, raw_id

euro = 978


async def _events(flow: Flow, prefix: str) -> list[str]:
    rows = await flow.pool.fetch(
        "SELECT type FROM events WHERE type LIKE $1 ORDER BY created_at, type", prefix + "%"
    )
    return [row["type"] for row in rows]


async def _wallet(flow: Flow) -> int:
    return (await flow.domain.world.balance("EUR")).posted


async def _settled(flow: Flow, target: Target) -> int:
    """What the partner's settlement account received."""
    assert target.partner_ledger_number is not None
    (account,) = await flow.domain.world.ledger.client.lookup_accounts(
        [
            tenant_account_id(
                flow.tenant_id, AccountType.PARTNER_SETTLEMENT, euro, target.partner_ledger_number
            )
        ]
    )
    return int(account.credits_posted)


async def _payments(flow: Flow, target: Target, order_id: uuid.UUID) -> int:
    assert target.partner_id is not None
    sandbox = SandboxPartner(
        partner_id=target.partner_id, reference="x", redis=flow.redis, namespace=flow.namespace
    )
    return await sandbox.payments(order_id.int)


async def test_a_full_run_lands_to_the_minor_unit(flow: Flow) -> None:
    savings = await flow.target("savings", partner_reference="SAV-1", percent_bps=2_550)
    rent = await flow.target("rent", partner_reference="RENT-9", amount=3_001)
    tax = await flow.target("tax", partner_reference=None, percent_bps=1_000)
    run_id = await flow.pull(10_007)
    await flow.collected(run_id)
    await flow.until_still()
    run = await flow.orchestrations.read(flow.principal, run_id)
    assert run.status == "completed"
    # 25.5% of 10,007 rounds down to 2,551; then 3,001; then 10% of 10,007 is 1,000.
    assert (run.amounts.collected, run.amounts.allocated, run.amounts.unallocated) == (
        10_007,
        2_551 + 3_001 + 1_000,
        10_007 - 6_552,
    )
    assert [(s.step, s.state) for s in run.steps] == [
        (name, "succeeded")
        for name in (
            "intent", "collect", "confirmation", "allocation", "partner_orders", "delivery",
            "notification",
        )
    ]  # fmt: skip
    assert all(s.started_at and s.finished_at for s in run.steps)
    assert sorted(o.status for o in run.orders) == ["delivered", "delivered"]
    assert await _wallet(flow) == 10_007 - 6_552
    balances = await flow.balances([savings, rent, tax])
    assert [(b.allocated_minor, b.delivered_minor, b.balance_minor) for b in balances] == [
        (2_551, 2_551, 0),
        (3_001, 3_001, 0),
        (1_000, 0, 1_000),
    ]
    assert await _settled(flow, savings) == 2_551
    assert await _settled(flow, rent) == 3_001
    for order in run.orders:
        target = savings if order.amount == 2_551 else rent
        assert await _payments(flow, target, uuid.UUID(int=raw_id(order.id))) == 1
    assert await _events(flow, "orchestration.") == [
        "orchestration.created",
        "orchestration.collected",
        "orchestration.allocated",
        "orchestration.completed",
    ]
    assert await _events(flow, "bucket.credited") == ["bucket.credited"] * 3
    assert await _events(flow, "bucket.deliver") == ["bucket.delivered"] * 2


async def test_a_replayed_notification_and_racing_workers_allocate_once(flow: Flow) -> None:
    await flow.target("savings", partner_reference=None, percent_bps=5_000)
    run_id = await flow.pull(800)
    reference = await flow.collected(run_id)
    # The same notification again (stored once), and the provider saying it twice.
    await flow.domain.notify(reference, "collection.succeeded", event_id=f"evt-{reference}")
    await flow.domain.notify(reference, "collection.succeeded", event_id=f"again-{reference}")
    await flow.domain.applier.apply()
    assert await flow.worker.confirm() == 1
    assert await flow.worker.confirm() == 0
    other = flow.another_worker()
    moved = await asyncio.gather(flow.worker.allocate(), other.allocate())
    assert sorted(moved) == [0, 1]
    await flow.until_still()
    assert await flow.pool.fetchval("SELECT count(*) FROM orchestrations") == 1
    assert await _events(flow, "orchestration.allocated") == ["orchestration.allocated"]
    assert await _events(flow, "bucket.credited") == ["bucket.credited"]
    assert await _wallet(flow) == 400
    assert (await flow.run(run_id)).status == "completed"


async def test_a_partner_that_refuses_leaves_the_money_in_its_bucket(flow: Flow) -> None:
    refusing = await flow.target("loan", partner_reference="sandbox:fail:AC04", amount=700)
    run_id = await flow.pull(1_000)
    await flow.collected(run_id)
    await flow.until_still()
    run = await flow.orchestrations.read(flow.principal, run_id)
    assert (run.status, run.failure_code) == ("failed", "delivery_failed")
    (order,) = run.orders
    assert (order.status, order.failure_code, order.attempts) == ("failed", "AC04", 1)
    (balance,) = await flow.balances([refusing])
    assert (balance.balance_minor, balance.delivered_minor, balance.pending_delivery_minor) == (
        700,
        0,
        0,
    )
    assert await _settled(flow, refusing) == 0
    assert await _payments(flow, refusing, uuid.UUID(int=raw_id(order.id))) == 0
    assert {(s.step, s.state) for s in run.steps} >= {("delivery", "failed")}
    payload = await flow.pool.fetchval(
        "SELECT payload FROM events WHERE type = 'orchestration.failed'"
    )
    assert order.id in payload
    assert await _events(flow, "bucket.delivery_failed") == ["bucket.delivery_failed"]
    # A refusal is the partner's answer: nothing is left for a person to find out.
    assert await flow.pool.fetchval("SELECT count(*) FROM operations_exceptions") == 0


async def test_a_partner_that_never_answers_fails_after_its_attempts(flow: Flow) -> None:
    silent = await flow.target("pension", partner_reference="sandbox:unavailable", amount=500)
    run_id = await flow.pull(500)
    await flow.collected(run_id)
    await flow.until_still()
    run = await flow.orchestrations.read(flow.principal, run_id)
    (order,) = run.orders
    assert (run.status, order.status, order.failure_code) == (
        "failed",
        "failed",
        "partner_unavailable",
    )
    assert order.attempts == 3
    (balance,) = await flow.balances([silent])
    assert (balance.balance_minor, balance.pending_delivery_minor) == (500, 0)
    # Whether the silent partner paid is unknown: a person is asked to find out, once.
    exceptions = await flow.pool.fetch(
        "SELECT kind, amount_minor, object_type FROM operations_exceptions"
    )
    assert [tuple(row) for row in exceptions] == [
        ("partner_delivery_unconfirmed", 500, "partner_order")
    ]


async def test_a_flaky_partner_is_paid_once(flow: Flow) -> None:
    flaky = await flow.target("savings", partner_reference="sandbox:flaky:2", amount=900)
    run_id = await flow.pull(900)
    await flow.collected(run_id)
    await flow.until_still()
    run = await flow.orchestrations.read(flow.principal, run_id)
    (order,) = run.orders
    assert (run.status, order.status, order.attempts) == ("completed", "delivered", 3)
    assert order.partner_reference is not None
    assert await _payments(flow, flaky, uuid.UUID(int=raw_id(order.id))) == 1
    assert await _settled(flow, flaky) == 900


async def test_a_failed_collection_fails_the_run(flow: Flow) -> None:
    await flow.target("savings", partner_reference=None, percent_bps=5_000)
    run_id = await flow.pull(600)
    await flow.collected(run_id, notice="failed")
    await flow.until_still()
    run = await flow.orchestrations.read(flow.principal, run_id)
    assert (run.status, run.failure_code, run.lines) == ("failed", "collection_failed", [])
    states = {s.step: s.state for s in run.steps}
    assert states["confirmation"] == "failed"
    assert states["allocation"] == "skipped"
    assert states["notification"] == "succeeded"
    assert await _wallet(flow) == 0


async def test_an_allocation_the_ledger_refuses_fails_the_run_and_moves_nothing(
    flow: Flow,
) -> None:
    await flow.target("savings", partner_reference=None, amount=600)
    run_id = await flow.pull(600)
    await flow.collected(run_id)
    await flow.domain.world.ledger.hold(
        tenant_id=flow.tenant_id, hold_id=new_object_id(), currency_code="EUR", amount_minor=500
    )
    await flow.until_still()
    run = await flow.orchestrations.read(flow.principal, run_id)
    assert (run.status, run.failure_code) == ("failed", "allocation_refused")
    assert run.orders == []
    assert await _wallet(flow) == 600


async def test_a_worker_resumed_after_a_crash_in_delivery_pays_once(flow: Flow) -> None:
    target = await flow.target("rent", partner_reference="RENT-1", amount=400)
    run_id = await flow.pull(400)
    await flow.collected(run_id)
    await flow.worker.confirm()
    await flow.worker.allocate()
    (order,) = await flow.pool.fetch("SELECT * FROM partner_orders")
    # A worker that reserved, sent and posted, then died before writing the order's row.
    delivery = Delivery(
        order_id=order["id"].int,
        tenant_id=flow.tenant_id,
        currency_code="EUR",
        bucket_sub_account=order["bucket_sub_account"],
        partner_sub_account=order["partner_ledger_number"],
        amount_minor=400,
    )
    await flow.buckets_ledger.reserve_many([delivery])
    (sent,) = await flow.partners.send_many([_order(flow, order)])
    await flow.buckets_ledger.post_many([delivery])
    await flow.until_still()
    run = await flow.orchestrations.read(flow.principal, run_id)
    assert (run.status, run.orders[0].status) == ("completed", "delivered")
    assert run.orders[0].partner_reference == getattr(sent, "partner_reference", None)
    assert await _payments(flow, target, order["id"]) == 1
    assert await _settled(flow, target) == 400


def _order(flow: Flow, order: asyncpg.Record) -> PartnerOrder:
    def raw(name: str) -> int:
        value = order[name]
        assert isinstance(value, uuid.UUID)
        return value.int

    return PartnerOrder(
        order_id=raw("id"),
        tenant_id=flow.tenant_id,
        partner_id=raw("partner_id"),
        orchestration_id=raw("orchestration_id"),
        bucket_id=raw("bucket_id"),
        customer_id=raw("customer_id"),
        currency="EUR",
        amount_minor=400,
        account_reference=None,
    )


def test_a_runs_collection_id_derives_from_the_run_and_differs_from_it() -> None:
    run_id = uuid.UUID(int=new_object_id())
    assert collection_id_for(run_id) == collection_id_for(run_id)
    assert collection_id_for(run_id) != run_id
    assert collection_id_for(uuid.UUID(int=new_object_id())) != collection_id_for(run_id)
