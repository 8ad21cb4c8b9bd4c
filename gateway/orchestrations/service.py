"""Orchestration runs as a tenant starts and reads them: a pull checked (the customer, a
mandate of theirs, active) and started (the run, its steps and `orchestration.created` in one
transaction, which may be another domain's: a schedule starts its occurrence's run in the
transaction that records the occurrence); a run read with its steps, lines and orders.

Nothing here moves money: the worker (`gateway.orchestrations.worker`) takes a started run
through collection, allocation and delivery.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from typing import Protocol

import asyncpg
import msgspec

from gateway.collections.wire import collection_amount_minor_max
from gateway.http.ids import encode_id
from gateway.http.paging import Page, PageRequest, Position
from gateway.http.ratelimit import Principal
from gateway.orchestrations import records, wire
from gateway.orchestrations.errors import (
    InvalidPullAmount,
    MandateInactive,
    MandateOfAnotherCustomer,
    MandateUnknown,
    OrchestrationUnknown,
)
from gateway.orchestrations.records import Event, OrchestrationRow
from gateway.orchestrations.views import (
    LineFacts,
    mandate_prefix,
    orchestration_prefix,
    orchestration_view,
    payload,
    summary_view,
)
from ledger.invariants import ensure


class PullIntent(msgspec.Struct, frozen=True, kw_only=True):
    """A run to start: who, under which mandate, how much, and what started it."""

    orchestration_id: int
    tenant_id: int
    compliance_region: str
    customer_id: int
    mandate_id: int
    currency: str
    amount_minor: int
    reference: str
    trigger: str
    schedule_id: int | None = None
    occurrence_at: datetime.datetime | None = None


class MandateFacts(msgspec.Struct, frozen=True, kw_only=True):
    """What a checked pull learnt of its mandate: where its rows live, what it collects."""

    compliance_region: str
    currency: str


class RegionalCustomer(Protocol):
    @property
    def region(self) -> str: ...


class CustomerLookup(Protocol):
    """What this domain needs of customers (`gateway.customers`): one by id, or
    `not_found`."""

    async def get(self, *, tenant_id: int, customer_id: int) -> RegionalCustomer: ...


class LineLookup(Protocol):
    """What reading a run needs of buckets (`gateway.buckets`): a run's allocation lines."""

    async def lines(self, *, orchestration_id: uuid.UUID) -> Sequence[LineFacts]: ...


def created_event(row: OrchestrationRow) -> Event:
    return run_event(row, "orchestration.created")


def run_event(row: OrchestrationRow, event_type: str) -> Event:
    return Event(
        tenant_id=row.tenant_id,
        type=event_type,
        object_id=row.id,
        key=row.id,
        payload=payload(summary_view(row)),
    )


def default_reference(orchestration_id: int) -> str:
    """A pull given no reference is named by its run: the provider shows it to the payer."""
    return "pull " + encode_id(orchestration_prefix, orchestration_id)


class Orchestrations:
    """Runs of every tenant, through one process's connections."""

    def __init__(self, *, pool: asyncpg.Pool, customers: CustomerLookup, lines: LineLookup) -> None:
        self._pool = pool
        self._customers = customers
        self._lines = lines

    async def check_pull(
        self, *, tenant_id: int, customer_id: int, mandate_id: int, amount_minor: int
    ) -> MandateFacts:
        """A pull's checks, shared by the route and the schedules: the customer is the
        tenant's, the mandate is the customer's and active, the amount within a
        collection's bounds. `not_found`, `validation_error` or `mandate_inactive`."""
        if not 0 < amount_minor <= collection_amount_minor_max:
            raise InvalidPullAmount(
                f"amount must be between 1 and {collection_amount_minor_max} minor units",
                field="amount",
            )
        customer = await self._customers.get(tenant_id=tenant_id, customer_id=customer_id)
        mandate = await records.mandate_facts(
            self._pool,
            region=customer.region,
            tenant_id=tenant_id,
            mandate_id=uuid.UUID(int=mandate_id),
        )
        if mandate is None:
            raise MandateUnknown(f"no mandate {encode_id(mandate_prefix, mandate_id)}")
        if mandate.customer_id.int != customer_id:
            raise MandateOfAnotherCustomer("the mandate is another customer's", field="mandate_id")
        if mandate.status != "active":
            raise MandateInactive(f"the mandate is {mandate.status}; a pull needs it active")
        return MandateFacts(compliance_region=customer.region, currency=mandate.currency)

    async def start(self, connection: records.Executor, intent: PullIntent) -> bool:
        """Start the run in the caller's transaction: the row, its steps and its
        `orchestration.created` event. False when a run with this id exists (a repeat)."""
        ensure(intent.amount_minor > 0, "a run pulls a positive amount")
        ensure((intent.trigger == "user") == (intent.schedule_id is None), "a schedule's run")
        row = await records.insert_orchestration(
            connection,
            records.NewOrchestration(
                compliance_region=intent.compliance_region,
                id=uuid.UUID(int=intent.orchestration_id),
                tenant_id=intent.tenant_id,
                customer_id=uuid.UUID(int=intent.customer_id),
                mandate_id=uuid.UUID(int=intent.mandate_id),
                currency=intent.currency,
                amount_minor=intent.amount_minor,
                reference=intent.reference,
                trigger=intent.trigger,
                schedule_id=None
                if intent.schedule_id is None
                else uuid.UUID(int=intent.schedule_id),
                occurrence_at=intent.occurrence_at,
            ),
            steps=wire.step_names,
        )
        if row is None:
            return False
        await records.insert_events(connection, [created_event(row)])
        return True

    async def pull(
        self,
        principal: Principal,
        *,
        customer_id: int,
        orchestration_id: int,
        body: wire.PullCreate,
        mandate_id: int,
    ) -> wire.Orchestration:
        """A user-triggered pull: checked now, started, and answered as stored. A retried
        request answers the run it started."""
        facts = await self.check_pull(
            tenant_id=principal.tenant_id,
            customer_id=customer_id,
            mandate_id=mandate_id,
            amount_minor=body.amount,
        )
        intent = PullIntent(
            orchestration_id=orchestration_id,
            tenant_id=principal.tenant_id,
            compliance_region=facts.compliance_region,
            customer_id=customer_id,
            mandate_id=mandate_id,
            currency=facts.currency,
            amount_minor=body.amount,
            reference=body.reference or default_reference(orchestration_id),
            trigger="user",
        )
        async with self._pool.acquire() as connection, connection.transaction():
            await self.start(connection, intent)
        return await self.read(principal, orchestration_id)

    async def _row(self, principal: Principal, orchestration_id: int) -> OrchestrationRow:
        row = await records.get_orchestration(
            self._pool,
            region=principal.compliance_region,
            tenant_id=principal.tenant_id,
            orchestration_id=uuid.UUID(int=orchestration_id),
        )
        if row is None:
            raise OrchestrationUnknown(
                f"no orchestration {encode_id(orchestration_prefix, orchestration_id)}"
            )
        return row

    async def read(self, principal: Principal, orchestration_id: int) -> wire.Orchestration:
        """The run with every step, its allocation lines and its partner orders."""
        row = await self._row(principal, orchestration_id)
        steps = await records.steps_of(
            self._pool, region=row.compliance_region, orchestration_id=row.id
        )
        orders = await records.orders_of(
            self._pool, region=row.compliance_region, orchestration_ids=[row.id]
        )
        lines = await self._lines.lines(orchestration_id=row.id)
        return orchestration_view(row, steps=steps, lines=lines, orders=orders)

    async def list(
        self,
        principal: Principal,
        *,
        customer_id: int | None,
        status: str | None,
        page: PageRequest[Position],
    ) -> Page[wire.OrchestrationSummary]:
        rows = await records.list_orchestrations(
            self._pool,
            tenant_id=principal.tenant_id,
            customer_id=None if customer_id is None else uuid.UUID(int=customer_id),
            status=status,
            page=page,
        )
        return rows.map(summary_view)


def _maybe_uuid(object_id: int | None) -> uuid.UUID | None:
    return None if object_id is None else uuid.UUID(int=object_id)
