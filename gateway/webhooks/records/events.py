"""The tenant's event log: the outbox (`events`) every domain writes in the transaction of
the state change it reports, read back with each event's deliveries.

A trigger on `events` (migration 0008) creates each event's deliveries in the same
transaction, so an event written is an event delivered."""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Any

import asyncpg
import msgspec

from gateway.http.paging import KeysetQuery, Page, PageRequest, Position, positions
from gateway.infra.database.batch import BatchStatement

events_page_max = 100
# The outbox: one row per event, its id derived from what it reports, so writing it again
# (a retry, a reconciler repairing a crash) is a no-op.
event_insert = BatchStatement(
    table="events",
    row_type="events_batch_row",
    columns=("id", "tenant_id", "type", "object_id", "payload"),
    types=("uuid", "bigint", "text", "uuid", "jsonb"),
    on_conflict="ON CONFLICT DO NOTHING",
)


class EventRow(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    tenant_id: int
    type: str
    object_id: uuid.UUID
    payload: dict[str, Any]
    created_at: datetime.datetime


class DeliveryRow(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    event_id: uuid.UUID
    endpoint_id: uuid.UUID
    status: str
    attempt: int
    round_base: int
    next_attempt_at: datetime.datetime | None
    last_attempt_at: datetime.datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime.datetime | None


_event_columns = "id, tenant_id, type, object_id, payload, created_at"
delivery_columns = """id, event_id, endpoint_id, status, attempt, round_base, next_attempt_at,
                      last_attempt_at, last_status_code, last_error, delivered_at"""


def _event(record: asyncpg.Record) -> EventRow:
    return EventRow(**{**dict(record), "payload": json.loads(record["payload"])})


def delivery_row(record: asyncpg.Record) -> DeliveryRow:
    return DeliveryRow(**{name: record[name] for name in DeliveryRow.__struct_fields__})


_event_pages = KeysetQuery(
    f"SELECT {_event_columns} FROM events "  # noqa: S608 - fixed column list.
    "WHERE tenant_id = $1 AND ($2::text IS NULL OR type = $2)",
    kind=positions,
)


async def list_events(
    pool: asyncpg.Pool, *, tenant_id: int, event_type: str | None, page: PageRequest[Position]
) -> Page[EventRow]:
    """A page of the tenant's events, oldest first."""
    return await _event_pages.page(pool, page, tenant_id, event_type, row=_event)


async def get_event(pool: asyncpg.Pool, *, tenant_id: int, event_id: uuid.UUID) -> EventRow | None:
    record = await pool.fetchrow(
        f"SELECT {_event_columns} FROM events "  # noqa: S608 - fixed column list.
        "WHERE id = $1 AND tenant_id = $2",
        event_id,
        tenant_id,
    )
    return None if record is None else _event(record)


async def deliveries_of(pool: asyncpg.Pool, *, event_id: uuid.UUID) -> list[DeliveryRow]:
    records = await pool.fetch(
        f"SELECT {delivery_columns} FROM webhook_deliveries "  # noqa: S608 - fixed columns.
        "WHERE event_id = $1 ORDER BY created_at, id",
        event_id,
    )
    return [delivery_row(record) for record in records]
