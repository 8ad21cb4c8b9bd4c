"""Append-only records: idempotency responses, the events outbox, and admin actions (which
go to the audit trail of `compliance.audit.chain`)."""

from __future__ import annotations

from typing import Any

import asyncpg

from compliance.audit.chain import append
from gateway.infra.database.batch import BatchStatement

idempotency_insert = BatchStatement(
    table="idempotency_records",
    row_type="idempotency_records_batch_row",
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
    row_type="events_batch_row",
    columns=("id", "tenant_id", "type", "object_id", "payload"),
    types=("uuid", "bigint", "text", "uuid", "jsonb"),
    on_conflict="ON CONFLICT DO NOTHING",
)


async def record_admin_action(
    pool: asyncpg.Pool, *, actor: str, action: str, target: str, details: dict[str, Any]
) -> None:
    """Every admin action is written to the hash-chained audit trail before it is done."""
    await append(pool, actor=actor, action=action, target=target, details=details)
