"""Append-only records: idempotency responses, the events outbox, and admin actions (which
go to the audit trail of `gateway.audit`)."""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Any

import asyncpg
import msgspec

from gateway.audit import append
from gateway.db.batch import BatchStatement

idempotency_insert = BatchStatement(
    table="idempotency_records",
    columns=(
        "tenant_id",
        "idempotency_key",
        "request_fingerprint",
        "response_status",
        "response_body",
    ),
    types=("bigint", "text", "bytea", "smallint", "bytea"),
    on_conflict="ON CONFLICT DO NOTHING",
)
event_insert = BatchStatement(
    table="events",
    columns=("id", "tenant_id", "type", "object_id", "payload"),
    types=("uuid", "bigint", "text", "uuid", "jsonb"),
    on_conflict="ON CONFLICT DO NOTHING",
)
events_page_max = 100


class EventRow(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    tenant_id: int
    type: str
    object_id: uuid.UUID
    payload: dict[str, Any]
    created_at: datetime.datetime


async def record_admin_action(
    pool: asyncpg.Pool, *, actor: str, action: str, target: str, details: dict[str, Any]
) -> None:
    """Every admin action is written to the hash-chained audit trail before it is done."""
    await append(pool, actor=actor, action=action, target=target, details=details)


async def list_events(pool: asyncpg.Pool, *, tenant_id: int, limit: int) -> list[EventRow]:
    rows = await pool.fetch(
        """SELECT id, tenant_id, type, object_id, payload, created_at FROM events
            WHERE tenant_id = $1 ORDER BY created_at, id LIMIT $2""",
        tenant_id,
        min(limit, events_page_max),
    )
    return [EventRow(**{**dict(row), "payload": json.loads(row["payload"])}) for row in rows]
