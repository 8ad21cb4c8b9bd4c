"""Schedules and their occurrences in Postgres (migration 0024).

The due pass's statements are built for many workers at once: `claim_due` locks the due rows
it takes (`FOR UPDATE SKIP LOCKED`, so another worker takes other rows or none), and the
caller advances each claimed row's `next_run_at` past the instant in the same transaction;
an occurrence is a row whose primary key is (schedule, instant), inserted `ON CONFLICT DO
NOTHING`, so even two passes that both computed one occurrence record it once. Each batch
statement carries the whole batch (one round trip per batch).
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence

import asyncpg
import msgspec

from gateway.http.paging import KeysetQuery, Page, PageRequest, Position, positions
from ledger.invariants import ensure

Executor = asyncpg.Pool | asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
# The most schedules one due statement claims; a pass claims batch after batch.
claim_batch_size_max = 500
schedules_page_max = 100


class ScheduleRow(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    tenant_id: int
    compliance_region: str
    customer_id: uuid.UUID
    mandate_id: uuid.UUID
    kind: str
    currency: str
    amount_minor: int | None
    reference: str
    cron: str | None
    timezone: str | None
    threshold_minor: int | None
    check_every_minutes: int | None
    status: str
    next_run_at: datetime.datetime
    last_run_at: datetime.datetime | None
    created_at: datetime.datetime
    deleted_at: datetime.datetime | None


class DueSchedule(msgspec.Struct, frozen=True, kw_only=True):
    """A claimed schedule and what the pass needs of its mandate."""

    schedule: ScheduleRow
    mandate_status: str | None  # None: the mandate row is gone (never, but said).
    provider: str | None
    provider_reference: str | None


class NewOccurrence(msgspec.Struct, frozen=True, kw_only=True):
    schedule_id: uuid.UUID
    occurrence_at: datetime.datetime
    tenant_id: int
    orchestration_id: uuid.UUID
    amount_minor: int
    balance_minor: int | None


class Advance(msgspec.Struct, frozen=True, kw_only=True):
    """A claimed schedule's next due instant, and its last run if this pass started one."""

    schedule_id: uuid.UUID
    next_run_at: datetime.datetime
    last_run_at: datetime.datetime | None = None


columns = ", ".join(ScheduleRow.__struct_fields__)
_prefixed_columns = ", ".join(f"s.{name}" for name in ScheduleRow.__struct_fields__)


def schedule_row(record: asyncpg.Record) -> ScheduleRow:
    return ScheduleRow(**{name: record[name] for name in ScheduleRow.__struct_fields__})


async def insert_schedule(executor: Executor, row: ScheduleRow) -> ScheduleRow | None:
    """The schedule as stored, or None when one with its id exists (a retried request)."""
    record = await executor.fetchrow(
        f"""INSERT INTO schedules ({columns})
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                    $17, $18)
            ON CONFLICT DO NOTHING RETURNING {columns}""",  # noqa: S608 - fixed columns.
        *(getattr(row, name) for name in ScheduleRow.__struct_fields__),
    )
    return None if record is None else schedule_row(record)


async def get_schedule(
    executor: Executor, *, tenant_id: int, customer_id: uuid.UUID, schedule_id: uuid.UUID
) -> ScheduleRow | None:
    """The tenant's customer's schedule, deleted or not; another's is not found."""
    record = await executor.fetchrow(
        f"SELECT {columns} FROM schedules "  # noqa: S608 - fixed column list.
        "WHERE id = $1 AND tenant_id = $2 AND customer_id = $3",
        schedule_id,
        tenant_id,
        customer_id,
    )
    return None if record is None else schedule_row(record)


_schedule_pages = KeysetQuery(
    f"SELECT {columns} FROM schedules "  # noqa: S608 - fixed column list.
    "WHERE tenant_id = $1 AND customer_id = $2 AND status = 'active'",
    kind=positions,
)


async def list_schedules(
    pool: asyncpg.Pool, *, tenant_id: int, customer_id: uuid.UUID, page: PageRequest[Position]
) -> Page[ScheduleRow]:
    """A page of the customer's active schedules, oldest first."""
    return await _schedule_pages.page(pool, page, tenant_id, customer_id, row=schedule_row)


async def delete_schedule(executor: Executor, *, schedule_id: uuid.UUID) -> ScheduleRow | None:
    """Mark an active schedule deleted; None when it was not active (deleted before). Waits
    for a due pass holding the row, so nothing starts for it once this returns."""
    record = await executor.fetchrow(
        f"""UPDATE schedules SET status = 'deleted', deleted_at = now(), updated_at = now()
             WHERE id = $1 AND status = 'active'
         RETURNING {columns}""",  # noqa: S608 - fixed column list.
        schedule_id,
    )
    return None if record is None else schedule_row(record)


_claim_due = (
    f"SELECT {_prefixed_columns}, "  # noqa: S608 - fixed column list.
    """m.status AS mandate_status, m.provider, m.provider_reference
         FROM schedules s
         LEFT JOIN mandates m ON m.compliance_region = s.compliance_region AND m.id = s.mandate_id
        WHERE s.status = 'active' AND s.kind = $1 AND s.next_run_at <= $2
        ORDER BY s.next_run_at
        LIMIT $3
          FOR UPDATE OF s SKIP LOCKED"""
)


async def claim_due(
    connection: Executor, *, kind: str, at: datetime.datetime, limit: int
) -> list[DueSchedule]:
    """Up to `limit` active schedules of `kind` due at `at`, earliest first, locked until
    the transaction ends; rows another transaction holds are skipped."""
    ensure(0 < limit <= claim_batch_size_max, "a claim is a bounded batch")
    records = await connection.fetch(_claim_due, kind, at, limit)
    return [
        DueSchedule(
            schedule=schedule_row(record),
            mandate_status=record["mandate_status"],
            provider=record["provider"],
            provider_reference=record["provider_reference"],
        )
        for record in records
    ]


async def advance(connection: Executor, advances: Sequence[Advance]) -> None:
    """Every claimed schedule's next due instant (and last run), in one statement."""
    ensure(len(advances) <= claim_batch_size_max, "an advance is a bounded batch")
    if not advances:
        return
    await connection.execute(
        """UPDATE schedules s
              SET next_run_at = a.next_run_at,
                  last_run_at = coalesce(a.last_run_at, s.last_run_at),
                  updated_at = now()
             FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[])
                  AS a(id, next_run_at, last_run_at)
            WHERE s.id = a.id""",
        [a.schedule_id for a in advances],
        [a.next_run_at for a in advances],
        [a.last_run_at for a in advances],
    )


async def insert_occurrences(
    connection: Executor, occurrences: Sequence[NewOccurrence]
) -> set[tuple[uuid.UUID, datetime.datetime]]:
    """Record the occurrences, in one statement; the (schedule, instant) of those recorded
    now (an occurrence recorded before is not recorded again, nor returned)."""
    ensure(len(occurrences) <= claim_batch_size_max, "occurrences are a bounded batch")
    if not occurrences:
        return set()
    records = await connection.fetch(
        """INSERT INTO schedule_occurrences (schedule_id, occurrence_at, tenant_id,
                                             orchestration_id, amount_minor, balance_minor)
           SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::bigint[], $4::uuid[],
                                $5::bigint[], $6::bigint[])
           ON CONFLICT DO NOTHING
           RETURNING schedule_id, occurrence_at""",
        [o.schedule_id for o in occurrences],
        [o.occurrence_at for o in occurrences],
        [o.tenant_id for o in occurrences],
        [o.orchestration_id for o in occurrences],
        [o.amount_minor for o in occurrences],
        [o.balance_minor for o in occurrences],
    )
    return {(record["schedule_id"], record["occurrence_at"]) for record in records}


async def with_unfinished_runs(
    connection: Executor, schedule_ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    """Those of the schedules with a run they started that is neither completed nor failed:
    a balance trigger waits for its pull to land before it pulls again (the balance it reads
    does not fall until then)."""
    ensure(len(schedule_ids) <= claim_batch_size_max, "a bounded batch of schedules")
    if not schedule_ids:
        return set()
    records = await connection.fetch(
        """SELECT DISTINCT o.schedule_id
             FROM schedule_occurrences o
             JOIN schedules s ON s.id = o.schedule_id
             JOIN orchestrations r
               ON r.compliance_region = s.compliance_region AND r.id = o.orchestration_id
            WHERE o.schedule_id = ANY($1::uuid[])
              AND r.status NOT IN ('completed', 'failed')""",
        list(schedule_ids),
    )
    return {record["schedule_id"] for record in records}
