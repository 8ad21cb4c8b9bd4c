"""The operations exceptions table (migration 0017): recorded once per fact, listed, resolved.

Domains record an exception inside the transaction that discovers it, keyed by the fact
(`dedupe_key`, e.g. `statement_entry:<id>` or `collection_shortfall:<id>`), so a replay of
what caused it records nothing more. Resolving is a person's act with a note; the caller
audits it.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping, Sequence

import asyncpg
import msgspec

from ledger.invariants import ensure

Executor = asyncpg.Pool | asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
dedupe_key_length_max = 200
resolution_note_length_max = 2_000
exceptions_per_call_max = 10_000


class NewException(msgspec.Struct, frozen=True, kw_only=True):
    """One exception to record; `dedupe_key` names the fact so it is recorded once."""

    id: uuid.UUID
    kind: str
    dedupe_key: str
    tenant_id: int | None = None
    currency: str | None = None
    amount_minor: int | None = None
    object_type: str | None = None
    object_id: uuid.UUID | None = None
    details: Mapping[str, object] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        ensure(
            0 < len(self.dedupe_key) <= dedupe_key_length_max,
            "an exception's dedupe key is 1 to 200 characters",
        )
        ensure(self.amount_minor is None or self.amount_minor >= 0, "amounts are not negative")


class ExceptionRow(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    kind: str
    status: str
    tenant_id: int | None
    currency: str | None
    amount_minor: int | None
    object_type: str | None
    object_id: uuid.UUID | None
    details: dict[str, object]
    created_at: datetime.datetime
    resolved_at: datetime.datetime | None
    resolved_by: str | None
    resolution_note: str | None


_insert = """
INSERT INTO operations_exceptions
    (id, kind, dedupe_key, tenant_id, currency, amount_minor, object_type, object_id, details)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::text[],
                     $6::bigint[], $7::text[], $8::uuid[], $9::jsonb[])
ON CONFLICT (dedupe_key) DO NOTHING
RETURNING id
"""


async def record(executor: Executor, exceptions: Sequence[NewException]) -> list[uuid.UUID]:
    """Record the exceptions not recorded before (by `dedupe_key`), in one statement; the ids
    of those newly recorded."""
    ensure(len(exceptions) <= exceptions_per_call_max, "at most 10,000 exceptions a call")
    if not exceptions:
        return []
    rows = await executor.fetch(
        _insert,
        [item.id for item in exceptions],
        [item.kind for item in exceptions],
        [item.dedupe_key for item in exceptions],
        [item.tenant_id for item in exceptions],
        [item.currency for item in exceptions],
        [item.amount_minor for item in exceptions],
        [item.object_type for item in exceptions],
        [item.object_id for item in exceptions],
        [msgspec.json.encode(item.details).decode() for item in exceptions],
    )
    return [row["id"] for row in rows]


_select_by_id = """
SELECT id, kind, status, tenant_id, currency, amount_minor, object_type, object_id,
    details::text AS details, created_at, resolved_at, resolved_by, resolution_note
FROM operations_exceptions WHERE id = $1"""
_select_by_object = """
SELECT id, kind, status, tenant_id, currency, amount_minor, object_type, object_id,
    details::text AS details, created_at, resolved_at, resolved_by, resolution_note
FROM operations_exceptions WHERE object_id = $1 ORDER BY created_at"""
_select_page = """
SELECT id, kind, status, tenant_id, currency, amount_minor, object_type, object_id,
    details::text AS details, created_at, resolved_at, resolved_by, resolution_note
FROM operations_exceptions
WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR kind = $2)
  AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
ORDER BY created_at DESC, id DESC LIMIT $5"""
_resolve = """UPDATE operations_exceptions
SET status = 'resolved', resolved_at = now(), resolved_by = $2, resolution_note = $3
WHERE id = $1 AND status = 'open'
RETURNING id, kind, status, tenant_id, currency, amount_minor, object_type, object_id,
    details::text AS details, created_at, resolved_at, resolved_by, resolution_note"""


def _row(record: asyncpg.Record) -> ExceptionRow:
    values = dict(record)
    values["details"] = msgspec.json.decode(values["details"])
    return msgspec.convert(values, ExceptionRow)


async def get(executor: Executor, exception_id: uuid.UUID) -> ExceptionRow | None:
    record = await executor.fetchrow(_select_by_id, exception_id)
    return None if record is None else _row(record)


async def for_object(executor: Executor, object_id: uuid.UUID) -> list[ExceptionRow]:
    """The exceptions recorded about one object (a collection, a statement entry...)."""
    records = await executor.fetch(
        _select_by_object,
        object_id,
    )
    return [_row(record) for record in records]


async def page(
    executor: Executor,
    *,
    status: str | None,
    kind: str | None,
    limit: int,
    after: tuple[datetime.datetime, uuid.UUID] | None,
) -> list[ExceptionRow]:
    """Newest first, `limit` rows after the cursor (created_at, id), optionally filtered."""
    ensure(0 < limit <= exceptions_per_call_max, "a page holds 1 to 10,000 exceptions")
    records = await executor.fetch(
        _select_page,
        status,
        kind,
        None if after is None else after[0],
        None if after is None else after[1],
        limit,
    )
    return [_row(record) for record in records]


async def resolve(
    executor: Executor, exception_id: uuid.UUID, *, resolved_by: str, note: str
) -> ExceptionRow | None:
    """Mark an open exception resolved with a note; None when there is no open one by that id
    (unknown, or already resolved)."""
    ensure(0 < len(note) <= resolution_note_length_max, "a resolution note is 1 to 2,000 chars")
    record = await executor.fetchrow(
        _resolve,
        exception_id,
        resolved_by,
        note,
    )
    return None if record is None else _row(record)
