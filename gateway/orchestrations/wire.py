"""The JSON shapes of pulls and orchestration runs: a run's summary (lists and events), and
the whole run with its steps, allocation lines and partner orders."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from gateway.collections.wire import CollectionAmount, MandateId
from gateway.http.wire import IssuedCurrencyCode, Reference, Timestamp

OrchestrationStatus = Literal[
    "pending", "collecting", "allocating", "delivering", "completed", "failed"
]
orchestration_statuses: tuple[str, ...] = OrchestrationStatus.__args__  # type: ignore[attr-defined]
final_statuses = ("completed", "failed")
Trigger = Literal["user", "schedule", "balance_threshold"]
triggers: tuple[str, ...] = Trigger.__args__  # type: ignore[attr-defined]
StepName = Literal[
    "intent", "collect", "confirmation", "allocation", "partner_orders", "delivery", "notification"
]
# The steps of a run, in the order it takes them.
step_names: tuple[str, ...] = StepName.__args__  # type: ignore[attr-defined]
StepState = Literal["pending", "running", "succeeded", "failed", "skipped"]
step_states: tuple[str, ...] = StepState.__args__  # type: ignore[attr-defined]
OrderStatus = Literal["pending", "reserved", "delivered", "failed"]
order_statuses: tuple[str, ...] = OrderStatus.__args__  # type: ignore[attr-defined]


class PullCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    mandate_id: MandateId
    amount: CollectionAmount
    reference: Reference | None = None


class Amounts(msgspec.Struct, frozen=True, kw_only=True):
    """What the run collected, put into buckets, and left on the wallet (0 until known)."""

    collected: int
    allocated: int
    unallocated: int


class OrchestrationSummary(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: str = "orchestration"
    customer_id: str
    mandate_id: str
    collection_id: str | None
    trigger: Trigger
    schedule_id: str | None
    occurrence_at: Timestamp | None
    status: OrchestrationStatus
    amount: int
    currency: IssuedCurrencyCode
    reference: str
    amounts: Amounts
    failure_code: str | None
    failure_description: str | None
    created_at: Timestamp
    updated_at: Timestamp


class Step(msgspec.Struct, frozen=True, kw_only=True):
    step: StepName
    state: StepState
    started_at: Timestamp | None
    finished_at: Timestamp | None
    detail: dict[str, Any]


class Line(msgspec.Struct, frozen=True, kw_only=True):
    """One rule's share of the collected amount, moved into its bucket."""

    rule_id: str
    bucket_id: str
    partner_id: str | None
    order_id: str | None  # The partner order paying it on, when the bucket has a partner.
    amount: int
    currency: IssuedCurrencyCode


class Order(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: str = "partner_order"
    orchestration_id: str
    bucket_id: str
    partner_id: str
    amount: int
    currency: IssuedCurrencyCode
    status: OrderStatus
    attempts: int
    partner_reference: str | None
    failure_code: str | None
    failure_description: str | None
    delivered_at: Timestamp | None
    created_at: Timestamp
    updated_at: Timestamp


class Orchestration(OrchestrationSummary, frozen=True, kw_only=True):
    steps: list[Step]
    lines: list[Line]
    orders: list[Order]


class OrchestrationPage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[OrchestrationSummary]
    next_cursor: str | None
