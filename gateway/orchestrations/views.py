"""Runs, steps, lines and orders as the API shows them (answers and event payloads alike)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Protocol, cast

import msgspec

from gateway.http.ids import encode_id
from gateway.orchestrations import wire
from gateway.orchestrations.records import OrchestrationRow, OrderRow, StepRow

customer_prefix = "cus"
mandate_prefix = "mdt"
collection_prefix = "col"
schedule_prefix = "sch"
orchestration_prefix = "orc"
order_prefix = "ord"
rule_prefix = "rul"
bucket_prefix = "bkt"
partner_prefix = "ptn"


class LineFacts(Protocol):
    """What a view needs of an allocation line (`gateway.buckets`' `AllocationLine`)."""

    @property
    def line_id(self) -> uuid.UUID: ...
    @property
    def rule_id(self) -> uuid.UUID: ...
    @property
    def bucket_id(self) -> uuid.UUID: ...
    @property
    def partner_id(self) -> uuid.UUID | None: ...
    @property
    def currency(self) -> str: ...
    @property
    def amount_minor(self) -> int: ...


def _maybe_id(prefix: str, value: uuid.UUID | None) -> str | None:
    return None if value is None else encode_id(prefix, value.int)


def amounts(row: OrchestrationRow) -> wire.Amounts:
    return wire.Amounts(
        collected=row.collected_minor,
        allocated=row.allocated_minor or 0,
        unallocated=row.unallocated_minor or 0,
    )


def summary_view(row: OrchestrationRow) -> wire.OrchestrationSummary:
    return wire.OrchestrationSummary(**_summary_fields(row))


def _summary_fields(row: OrchestrationRow) -> dict[str, Any]:
    return {
        "id": encode_id(orchestration_prefix, row.id.int),
        "customer_id": encode_id(customer_prefix, row.customer_id.int),
        "mandate_id": encode_id(mandate_prefix, row.mandate_id.int),
        "collection_id": _maybe_id(collection_prefix, row.collection_id),
        "trigger": cast(wire.Trigger, row.trigger),
        "schedule_id": _maybe_id(schedule_prefix, row.schedule_id),
        "occurrence_at": row.occurrence_at,
        "status": cast(wire.OrchestrationStatus, row.status),
        "amount": row.amount_minor,
        "currency": row.currency,
        "reference": row.reference,
        "amounts": amounts(row),
        "failure_code": row.failure_code,
        "failure_description": row.failure_description,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def step_view(row: StepRow) -> wire.Step:
    return wire.Step(
        step=cast(wire.StepName, row.step),
        state=cast(wire.StepState, row.state),
        started_at=row.started_at,
        finished_at=row.finished_at,
        detail=row.detail,
    )


def line_view(line: LineFacts) -> wire.Line:
    return wire.Line(
        rule_id=encode_id(rule_prefix, line.rule_id.int),
        bucket_id=encode_id(bucket_prefix, line.bucket_id.int),
        partner_id=_maybe_id(partner_prefix, line.partner_id),
        order_id=None if line.partner_id is None else encode_id(order_prefix, line.line_id.int),
        amount=line.amount_minor,
        currency=line.currency,
    )


def order_view(row: OrderRow) -> wire.Order:
    return wire.Order(
        id=encode_id(order_prefix, row.id.int),
        orchestration_id=encode_id(orchestration_prefix, row.orchestration_id.int),
        bucket_id=encode_id(bucket_prefix, row.bucket_id.int),
        partner_id=encode_id(partner_prefix, row.partner_id.int),
        amount=row.amount_minor,
        currency=row.currency,
        status=cast(wire.OrderStatus, row.status),
        attempts=row.attempts,
        partner_reference=row.partner_reference,
        failure_code=row.failure_code,
        failure_description=row.failure_description,
        delivered_at=row.delivered_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def orchestration_view(
    row: OrchestrationRow,
    *,
    steps: Sequence[StepRow],
    lines: Sequence[LineFacts],
    orders: Sequence[OrderRow],
) -> wire.Orchestration:
    return wire.Orchestration(
        **_summary_fields(row),
        steps=[step_view(step) for step in steps],
        lines=[line_view(line) for line in lines],
        orders=[order_view(order) for order in orders],
    )


def payload(view: msgspec.Struct) -> dict[str, Any]:
    """An answer as an event's payload."""
    encoded: dict[str, Any] = msgspec.to_builtins(view)
    return encoded
