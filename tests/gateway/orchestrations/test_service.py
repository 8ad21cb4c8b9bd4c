"""Pulls on real Postgres and Redis: a pull is checked before anything is stored (the
customer is the tenant's, the mandate is that customer's and active, the amount within a
collection's bounds); a started run has its row, all seven steps (intent succeeded, the rest
pending) and one `orchestration.created` event, written once however often it is started;
a pull answers the run with its steps."""

from __future__ import annotations

import uuid

import pytest

from gateway.http.ids import encode_id
from gateway.orchestrations import wire
from gateway.orchestrations.errors import (
    InvalidPullAmount,
    MandateInactive,
    MandateOfAnotherCustomer,
    MandateUnknown,
)
from gateway.orchestrations.service import PullIntent
from ledger.errors import DomainError
from ledger.transfers import new_object_id
from tests.gateway.orchestrations.fixtures import Flow


async def test_a_pull_is_checked_and_answers_the_mandates_region_and_currency(flow: Flow) -> None:
    facts = await flow.orchestrations.check_pull(
        tenant_id=flow.tenant_id,
        customer_id=flow.customer_id,
        mandate_id=flow.mandate_id,
        amount_minor=10_000,
    )
    assert (facts.compliance_region, facts.currency) == ("EU", "EUR")


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ("unknown_customer", DomainError),
        ("unknown_mandate", MandateUnknown),
        ("other_customer", MandateOfAnotherCustomer),
        ("inactive", MandateInactive),
        ("amount", InvalidPullAmount),
    ],
)
async def test_a_pull_that_cannot_run_is_refused_and_stores_nothing(
    flow: Flow, change: str, error: type[DomainError]
) -> None:
    customer, mandate, amount = flow.customer_id, flow.mandate_id, 10_000
    if change == "unknown_customer":
        customer = new_object_id()
    elif change == "unknown_mandate":
        mandate = new_object_id()
    elif change == "other_customer":
        other = await flow.customer()
        await flow.pool.execute("UPDATE mandates SET customer_id = $1", uuid.UUID(int=other))
    elif change == "inactive":
        await flow.pool.execute("UPDATE mandates SET status = 'deactivated'")

    async def attempt() -> None:
        if change == "amount":
            await flow.orchestrations.check_pull(
                tenant_id=flow.tenant_id, customer_id=customer, mandate_id=mandate, amount_minor=0
            )
            return
        await flow.orchestrations.pull(
            flow.principal,
            customer_id=customer,
            mandate_id=mandate,
            orchestration_id=new_object_id(),
            body=wire.PullCreate(mandate_id=encode_id("mdt", mandate), amount=amount),
        )

    with pytest.raises(error) as raised:
        await attempt()
    assert raised.value.code in (
        "not_found",
        "validation_error",
        "mandate_customer_mismatch",
        "mandate_inactive",
    )
    assert await flow.pool.fetchval("SELECT count(*) FROM orchestrations") == 0


async def test_a_started_run_has_every_step_and_one_created_event(flow: Flow) -> None:
    run_id = new_object_id()
    intent = PullIntent(
        orchestration_id=run_id,
        tenant_id=flow.tenant_id,
        compliance_region="EU",
        customer_id=flow.customer_id,
        mandate_id=flow.mandate_id,
        currency="EUR",
        amount_minor=12_345,
        reference="March",
        trigger="user",
    )
    async with flow.pool.acquire() as connection, connection.transaction():
        assert await flow.orchestrations.start(connection, intent)
    async with flow.pool.acquire() as connection, connection.transaction():
        assert not await flow.orchestrations.start(connection, intent)
    run = await flow.orchestrations.read(flow.principal, run_id)
    assert run.status == "pending"
    assert [(s.step, s.state) for s in run.steps] == [
        ("intent", "succeeded"),
        *((name, "pending") for name in wire.step_names[1:]),
    ]
    assert run.steps[0].started_at is not None
    assert run.steps[0].finished_at is not None
    events = await flow.pool.fetch("SELECT type, payload FROM events WHERE type LIKE 'orch%'")
    assert [e["type"] for e in events] == ["orchestration.created"]


async def test_a_pull_answers_the_run_and_a_repeat_answers_the_same_one(flow: Flow) -> None:
    run_id = new_object_id()
    body = wire.PullCreate(mandate_id=encode_id("mdt", flow.mandate_id), amount=5_000)
    first = await flow.orchestrations.pull(
        flow.principal,
        customer_id=flow.customer_id,
        mandate_id=flow.mandate_id,
        orchestration_id=run_id,
        body=body,
    )
    again = await flow.orchestrations.pull(
        flow.principal,
        customer_id=flow.customer_id,
        mandate_id=flow.mandate_id,
        orchestration_id=run_id,
        body=body,
    )
    assert first == again
    assert first.id == encode_id("orc", run_id)
    assert first.reference == "pull " + first.id
    assert first.amounts == wire.Amounts(collected=0, allocated=0, unallocated=0)
    assert await flow.pool.fetchval("SELECT count(*) FROM orchestrations") == 1
