"""The event types Kovra emits, and the filters an endpoint may subscribe with.

A filter is `*` (everything), a family such as `transfer.*`, or one exact type. Filters are
checked against this catalog when an endpoint is created, so a typo is an error naming the
filter rather than an endpoint that silently never receives anything. The database applies
the same three forms when it fans events out (migration 0008).
"""

from __future__ import annotations

event_types = (
    "deposit.posted",
    "hold.created",
    "hold.captured",
    "hold.voided",
    "transfer.processing",
    "transfer.in_review",
    "transfer.blocked",
    "transfer.submitted",
    "transfer.pending_rail",
    "transfer.completed",
    "transfer.rail_rejected",
    "transfer.refunded",
    "transfer.cancelled",
    "batch.completed",
    "customer.created",
    "mandate.pending",
    "mandate.active",
    "mandate.failed",
    "mandate.deactivated",
    "mandate.expired",
    "collection.pending",
    "collection.succeeded",
    "collection.failed",
    "collection.returned",
    "funding.credited",
    "orchestration.created",
    "orchestration.collected",
    "orchestration.allocated",
    "orchestration.completed",
    "orchestration.failed",
    "bucket.created",
    "bucket.credited",
    "bucket.delivered",
    "bucket.delivery_failed",
)
families = tuple(sorted({event_type.split(".")[0] for event_type in event_types}))
filters = ("*", *(f"{family}.*" for family in families), *event_types)
enabled_events_max = 32


def matches(enabled_events: list[str] | tuple[str, ...], event_type: str) -> bool:
    """Whether an endpoint with these filters receives an event of this type."""
    family = event_type.split(".", maxsplit=1)[0]
    return any(f in ("*", event_type, f"{family}.*") for f in enabled_events)


def unknown_filters(enabled_events: list[str] | tuple[str, ...]) -> list[str]:
    return [f for f in enabled_events if f not in filters]
