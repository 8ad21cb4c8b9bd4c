"""Orchestration runs, their steps and their partner orders in Postgres (migration 0023), and
the outbox events that go with them (same transaction, always).

Every state change is conditional on the state it leaves, so two workers racing (one whose
lease ran out while it was still working, and the one that took the run over) never both
apply one. Statements take a whole batch (`unnest` of arrays): one round trip per batch.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec

from gateway.http.ids import uuid_from_bytes
from gateway.http.paging import KeysetQuery, Page, PageRequest, Position, positions
from ledger.invariants import ensure

Executor = asyncpg.Pool | asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
# The most rows one statement of a pass reads or writes.
rows_per_statement_max = 1_000
# Work waiting on something else (a collection's notification) is parked far away.
parked_until = datetime.datetime(9999, 1, 1, tzinfo=datetime.UTC)
# Steps whose state means the step has begun, and those that mean it is over.
begun_states = ("running", "succeeded", "failed")
over_states = ("succeeded", "failed", "skipped")


class OrchestrationRow(msgspec.Struct, frozen=True, kw_only=True):
    compliance_region: str
    id: uuid.UUID
    tenant_id: int
    customer_id: uuid.UUID
    mandate_id: uuid.UUID
    currency: str
    amount_minor: int
    reference: str
    trigger: str
    schedule_id: uuid.UUID | None
    occurrence_at: datetime.datetime | None
    status: str
    collection_id: uuid.UUID | None
    collected_minor: int
    allocated_minor: int | None
    unallocated_minor: int | None
    failure_code: str | None
    failure_description: str | None
    next_attempt_at: datetime.datetime
    created_at: datetime.datetime
    updated_at: datetime.datetime


class StepRow(msgspec.Struct, frozen=True, kw_only=True):
    step: str
    position: int
    state: str
    started_at: datetime.datetime | None
    finished_at: datetime.datetime | None
    detail: dict[str, Any]


class OrderRow(msgspec.Struct, frozen=True, kw_only=True):
    compliance_region: str
    id: uuid.UUID
    orchestration_id: uuid.UUID
    tenant_id: int
    customer_id: uuid.UUID
    partner_id: uuid.UUID
    bucket_id: uuid.UUID
    bucket_sub_account: int
    partner_ledger_number: int
    account_reference: str | None
    currency: str
    amount_minor: int
    status: str
    attempts: int
    next_attempt_at: datetime.datetime
    partner_reference: str | None
    failure_code: str | None
    failure_description: str | None
    delivered_at: datetime.datetime | None
    created_at: datetime.datetime
    updated_at: datetime.datetime


orchestration_columns = ", ".join(OrchestrationRow.__struct_fields__)
order_columns = ", ".join(OrderRow.__struct_fields__)


def orchestration_row(record: asyncpg.Record) -> OrchestrationRow:
    return OrchestrationRow(**{name: record[name] for name in OrchestrationRow.__struct_fields__})


def order_row(record: asyncpg.Record) -> OrderRow:
    return OrderRow(**{name: record[name] for name in OrderRow.__struct_fields__})


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """An outbox event about one object of one tenant; `key` makes its id (the object a
    bucket event is about is its bucket, but each line credits it once)."""

    tenant_id: int
    type: str
    object_id: uuid.UUID
    key: uuid.UUID
    payload: dict[str, Any]

    @property
    def id(self) -> uuid.UUID:
        """The same event of the same key always gets the same id, so a pass repeated after
        a crash writes it once."""
        digest = hashlib.blake2b(
            f"{self.key}:{self.type}".encode(), digest_size=16, person=b"kovra.event"
        ).digest()
        return uuid_from_bytes(digest)


async def insert_events(executor: Executor, events: Sequence[Event]) -> None:
    """The events, in one statement; an event written before (same id) is not written again."""
    if not events:
        return
    await executor.execute(
        """INSERT INTO events (id, tenant_id, type, object_id, payload)
           SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::uuid[], $5::jsonb[])
           ON CONFLICT DO NOTHING""",
        [event.id for event in events],
        [event.tenant_id for event in events],
        [event.type for event in events],
        [event.object_id for event in events],
        [msgspec.json.encode(event.payload).decode() for event in events],
    )


# --------------------------------------------------------------------------------------
# Runs.


class NewOrchestration(msgspec.Struct, frozen=True, kw_only=True):
    compliance_region: str
    id: uuid.UUID
    tenant_id: int
    customer_id: uuid.UUID
    mandate_id: uuid.UUID
    currency: str
    amount_minor: int
    reference: str
    trigger: str
    schedule_id: uuid.UUID | None
    occurrence_at: datetime.datetime | None


_insert_orchestration = f"""
WITH run AS (
    INSERT INTO orchestrations (compliance_region, id, tenant_id, customer_id, mandate_id,
                                currency, amount_minor, reference, trigger, schedule_id,
                                occurrence_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
    ON CONFLICT DO NOTHING RETURNING *
), steps AS (
    INSERT INTO orchestration_steps (compliance_region, orchestration_id, step, position,
                                     state, started_at, finished_at)
    SELECT run.compliance_region, run.id, s.step, s.position,
           CASE WHEN s.position = 1 THEN 'succeeded' ELSE 'pending' END,
           CASE WHEN s.position = 1 THEN now() END, CASE WHEN s.position = 1 THEN now() END
      FROM run, unnest($12::text[]) WITH ORDINALITY AS s(step, position)
)
SELECT {orchestration_columns} FROM run"""  # noqa: S608 - fixed column list.


async def insert_orchestration(
    executor: Executor, run: NewOrchestration, *, steps: Sequence[str]
) -> OrchestrationRow | None:
    """The run as stored, with its steps (the first, `intent`, succeeded; the rest pending),
    in one statement; None when a run with its id exists (a repeat)."""
    record = await executor.fetchrow(
        _insert_orchestration,
        run.compliance_region,
        run.id,
        run.tenant_id,
        run.customer_id,
        run.mandate_id,
        run.currency,
        run.amount_minor,
        run.reference,
        run.trigger,
        run.schedule_id,
        run.occurrence_at,
        list(steps),
    )
    return None if record is None else orchestration_row(record)


async def get_orchestration(
    executor: Executor, *, region: str, tenant_id: int, orchestration_id: uuid.UUID
) -> OrchestrationRow | None:
    record = await executor.fetchrow(
        f"SELECT {orchestration_columns} FROM orchestrations "  # noqa: S608 - fixed columns.
        "WHERE compliance_region = $1 AND id = $2 AND tenant_id = $3",
        region,
        orchestration_id,
        tenant_id,
    )
    return None if record is None else orchestration_row(record)


_orchestration_pages = KeysetQuery(
    f"SELECT {orchestration_columns} FROM orchestrations "  # noqa: S608 - fixed column list.
    "WHERE tenant_id = $1 AND ($2::uuid IS NULL OR customer_id = $2)"
    " AND ($3::text IS NULL OR status = $3)",
    kind=positions,
)


async def list_orchestrations(
    pool: asyncpg.Pool,
    *,
    tenant_id: int,
    customer_id: uuid.UUID | None,
    status: str | None,
    page: PageRequest[Position],
) -> Page[OrchestrationRow]:
    """A page of the tenant's runs, oldest first."""
    return await _orchestration_pages.page(
        pool, page, tenant_id, customer_id, status, row=orchestration_row
    )


async def claim_runs(
    pool: asyncpg.Pool, *, status: str, limit: int, lease_seconds: int
) -> list[OrchestrationRow]:
    """Lease up to `limit` due runs in `status` for `lease_seconds` (another claim skips them
    meanwhile, and takes them once the lease ran out, their worker having died)."""
    ensure(0 < limit <= rows_per_statement_max, "a claim is bounded")
    ensure(status in ("pending", "allocating"), "only these states wait on the worker alone")
    records = await pool.fetch(
        f"""UPDATE orchestrations SET next_attempt_at = now() + make_interval(secs => $3)
             WHERE (compliance_region, id) IN (
                   SELECT compliance_region, id FROM orchestrations
                    WHERE status = $1 AND next_attempt_at <= now()
                    ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED)
         RETURNING {orchestration_columns}""",  # noqa: S608 - fixed column list.
        status,
        limit,
        lease_seconds,
    )
    return [orchestration_row(record) for record in records]


class Collected(msgspec.Struct, frozen=True, kw_only=True):
    """A collecting run whose collection reached a final state."""

    run: OrchestrationRow
    collection_status: str
    failure_code: str | None
    failure_description: str | None


_collected_sql = f"""
SELECT {", ".join(f"o.{column}" for column in OrchestrationRow.__struct_fields__)},
       c.status AS collection_status, c.failure_code AS collection_failure_code,
       c.failure_description AS collection_failure_description
  FROM orchestrations o JOIN collections c
    ON c.compliance_region = o.compliance_region AND c.id = o.collection_id
 WHERE o.status = 'collecting' AND c.status <> 'pending'
 ORDER BY o.updated_at LIMIT $1
   FOR UPDATE OF o SKIP LOCKED"""  # noqa: S608 - fixed column list.


async def lock_collected(connection: Executor, *, limit: int) -> list[Collected]:
    """Collecting runs whose collection is final (succeeded, failed or returned), with its
    state, in one query; locked for the caller's transaction, those another holds skipped."""
    ensure(0 < limit <= rows_per_statement_max, "a pass reads a bounded batch")
    records = await connection.fetch(_collected_sql, limit)
    return [
        Collected(
            run=orchestration_row(record),
            collection_status=record["collection_status"],
            failure_code=record["collection_failure_code"],
            failure_description=record["collection_failure_description"],
        )
        for record in records
    ]


class Move(msgspec.Struct, frozen=True, kw_only=True):
    """A run's next state, from the state it must be in. Fields left None keep their value."""

    run: OrchestrationRow
    from_status: str
    to_status: str
    collection_id: uuid.UUID | None = None
    collected_minor: int | None = None
    allocated_minor: int | None = None
    unallocated_minor: int | None = None
    failure_code: str | None = None
    failure_description: str | None = None
    next_attempt_at: datetime.datetime | None = None


async def move_runs(connection: Executor, moves: Sequence[Move]) -> set[uuid.UUID]:
    """Move each run that is still in its `from_status`, in one statement; the ids moved."""
    if not moves:
        return set()
    ensure(len(moves) <= rows_per_statement_max, "a move is bounded")
    records = await connection.fetch(
        """UPDATE orchestrations o SET status = m.to_status,
                  collection_id = COALESCE(m.collection_id, o.collection_id),
                  collected_minor = COALESCE(m.collected_minor, o.collected_minor),
                  allocated_minor = COALESCE(m.allocated_minor, o.allocated_minor),
                  unallocated_minor = COALESCE(m.unallocated_minor, o.unallocated_minor),
                  failure_code = COALESCE(m.failure_code, o.failure_code),
                  failure_description = COALESCE(m.failure_description, o.failure_description),
                  next_attempt_at = COALESCE(m.next_attempt_at, now()), updated_at = now()
             FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::uuid[],
                         $6::bigint[], $7::bigint[], $8::bigint[], $9::text[], $10::text[],
                         $11::timestamptz[])
                  AS m(region, id, from_status, to_status, collection_id, collected_minor,
                       allocated_minor, unallocated_minor, failure_code, failure_description,
                       next_attempt_at)
            WHERE o.compliance_region = m.region AND o.id = m.id AND o.status = m.from_status
        RETURNING o.id""",
        [move.run.compliance_region for move in moves],
        [move.run.id for move in moves],
        [move.from_status for move in moves],
        [move.to_status for move in moves],
        [move.collection_id for move in moves],
        [move.collected_minor for move in moves],
        [move.allocated_minor for move in moves],
        [move.unallocated_minor for move in moves],
        [move.failure_code for move in moves],
        [move.failure_description for move in moves],
        [move.next_attempt_at for move in moves],
    )
    return {record["id"] for record in records}


async def release_runs(
    pool: asyncpg.Pool, runs: Sequence[OrchestrationRow], *, after_seconds: float
) -> None:
    """Give back the leases of `runs`, whose work could not be done now, for a try after
    `after_seconds`."""
    if not runs:
        return
    await pool.execute(
        """UPDATE orchestrations o SET next_attempt_at = now() + make_interval(secs => $3)
             FROM unnest($1::text[], $2::uuid[]) AS r(region, id)
            WHERE o.compliance_region = r.region AND o.id = r.id""",
        [run.compliance_region for run in runs],
        [run.id for run in runs],
        after_seconds,
    )


# --------------------------------------------------------------------------------------
# Steps.


class StepChange(msgspec.Struct, frozen=True, kw_only=True):
    """A step's new state (its `detail` merged into what it holds)."""

    compliance_region: str
    orchestration_id: uuid.UUID
    step: str
    state: str
    detail: dict[str, Any] = msgspec.field(default_factory=dict)


async def set_steps(connection: Executor, changes: Sequence[StepChange]) -> None:
    """Each step's new state, in one statement: `started_at` set when it first begins,
    `finished_at` when it is over."""
    if not changes:
        return
    await connection.execute(
        """UPDATE orchestration_steps s SET state = c.state, detail = s.detail || c.detail,
                  started_at = CASE WHEN c.state = ANY($6::text[])
                                    THEN COALESCE(s.started_at, now()) ELSE s.started_at END,
                  finished_at = CASE WHEN c.state = ANY($7::text[])
                                     THEN COALESCE(s.finished_at, now()) END
             FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::jsonb[])
                  AS c(region, orchestration_id, step, state, detail)
            WHERE s.compliance_region = c.region AND s.orchestration_id = c.orchestration_id
              AND s.step = c.step""",
        [change.compliance_region for change in changes],
        [change.orchestration_id for change in changes],
        [change.step for change in changes],
        [change.state for change in changes],
        [json.dumps(change.detail) for change in changes],
        list(begun_states),
        list(over_states),
    )


async def steps_of(
    executor: Executor, *, region: str, orchestration_id: uuid.UUID
) -> list[StepRow]:
    records = await executor.fetch(
        """SELECT step, position, state, started_at, finished_at, detail
             FROM orchestration_steps
            WHERE compliance_region = $1 AND orchestration_id = $2 ORDER BY position""",
        region,
        orchestration_id,
    )
    return [
        StepRow(**{**dict(record), "detail": json.loads(record["detail"])}) for record in records
    ]


# --------------------------------------------------------------------------------------
# Partner orders.


class NewOrder(msgspec.Struct, frozen=True, kw_only=True):
    compliance_region: str
    id: uuid.UUID
    orchestration_id: uuid.UUID
    tenant_id: int
    customer_id: uuid.UUID
    partner_id: uuid.UUID
    bucket_id: uuid.UUID
    bucket_sub_account: int
    partner_ledger_number: int
    account_reference: str | None
    currency: str
    amount_minor: int


async def insert_orders(connection: Executor, orders: Sequence[NewOrder]) -> None:
    """The orders, in one statement; one stored before (same id) is not stored again."""
    if not orders:
        return
    ensure(len(orders) <= rows_per_statement_max * 10, "orders of one batch are bounded")
    columns = NewOrder.__struct_fields__
    types = (
        "text", "uuid", "uuid", "bigint", "uuid", "uuid", "uuid", "bigint", "bigint", "text",
        "text", "bigint",
    )  # fmt: skip
    arrays = ", ".join(f"${i}::{kind}[]" for i, kind in enumerate(types, start=1))
    await connection.execute(
        f"""INSERT INTO partner_orders ({", ".join(columns)})
            SELECT * FROM unnest({arrays}) ON CONFLICT DO NOTHING""",  # noqa: S608 - fixed.
        *([getattr(order, column) for order in orders] for column in columns),
    )


async def claim_orders(pool: asyncpg.Pool, *, limit: int, lease_seconds: int) -> list[OrderRow]:
    """Lease up to `limit` due orders not yet delivered nor failed, for `lease_seconds`."""
    ensure(0 < limit <= rows_per_statement_max, "a claim is bounded")
    records = await pool.fetch(
        f"""UPDATE partner_orders SET next_attempt_at = now() + make_interval(secs => $2)
             WHERE (compliance_region, id) IN (
                   SELECT compliance_region, id FROM partner_orders
                    WHERE status IN ('pending', 'reserved') AND next_attempt_at <= now()
                    ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING {order_columns}""",  # noqa: S608 - fixed column list.
        limit,
        lease_seconds,
    )
    return [order_row(record) for record in records]


async def write_orders(connection: Executor, orders: Sequence[OrderRow]) -> list[OrderRow]:
    """Write each order's state as `orders` have it, unless it is delivered or failed
    already (another worker finished it); the orders written, as stored now."""
    if not orders:
        return []
    records = await connection.fetch(
        f"""UPDATE partner_orders o SET status = r.status, attempts = r.attempts,
                  next_attempt_at = r.next_attempt_at,
                  partner_reference = COALESCE(o.partner_reference, r.partner_reference),
                  failure_code = r.failure_code, failure_description = r.failure_description,
                  delivered_at = CASE WHEN r.status = 'delivered'
                                      THEN COALESCE(o.delivered_at, now()) END,
                  updated_at = now()
             FROM unnest($1::text[], $2::uuid[], $3::text[], $4::int[], $5::timestamptz[],
                         $6::text[], $7::text[], $8::text[])
                  AS r(region, id, status, attempts, next_attempt_at, partner_reference,
                       failure_code, failure_description)
            WHERE o.compliance_region = r.region AND o.id = r.id
              AND o.status IN ('pending', 'reserved')
        RETURNING {", ".join(f"o.{c}" for c in OrderRow.__struct_fields__)}""",  # noqa: S608
        [order.compliance_region for order in orders],
        [order.id for order in orders],
        [order.status for order in orders],
        [order.attempts for order in orders],
        [order.next_attempt_at for order in orders],
        [order.partner_reference for order in orders],
        [order.failure_code for order in orders],
        [order.failure_description for order in orders],
    )
    return [order_row(record) for record in records]


async def orders_of(
    executor: Executor, *, region: str, orchestration_ids: Sequence[uuid.UUID]
) -> list[OrderRow]:
    """The orders of these runs, oldest first."""
    records = await executor.fetch(
        f"""SELECT {order_columns} FROM partner_orders
             WHERE compliance_region = $1 AND orchestration_id = ANY($2::uuid[])
             ORDER BY created_at, id""",  # noqa: S608 - fixed column list.
        region,
        list(orchestration_ids),
    )
    return [order_row(record) for record in records]


_finished_runs_sql = f"""
SELECT {orchestration_columns} FROM orchestrations o
 WHERE o.status = 'delivering' AND NOT EXISTS (
       SELECT 1 FROM partner_orders p
        WHERE p.compliance_region = o.compliance_region AND p.orchestration_id = o.id
          AND p.status IN ('pending', 'reserved'))
 ORDER BY o.updated_at LIMIT $1
   FOR UPDATE OF o SKIP LOCKED"""  # noqa: S608 - fixed column list.


async def lock_finished_runs(
    connection: Executor, *, limit: int
) -> list[tuple[OrchestrationRow, list[OrderRow]]]:
    """Delivering runs none of whose orders is still pending or reserved, each with its
    orders; locked for the caller's transaction, those another holds skipped. A sweep
    rather than a check after each order's write: two workers finishing a run's last two
    orders at once would each see the other's still open."""
    ensure(0 < limit <= rows_per_statement_max, "a pass reads a bounded batch")
    records = await connection.fetch(_finished_runs_sql, limit)
    runs = [orchestration_row(record) for record in records]
    finished: list[tuple[OrchestrationRow, list[OrderRow]]] = []
    for region in sorted({run.compliance_region for run in runs}):
        mine = [run for run in runs if run.compliance_region == region]
        orders = await orders_of(connection, region=region, orchestration_ids=[r.id for r in mine])
        finished.extend(
            (run, [order for order in orders if order.orchestration_id == run.id]) for run in mine
        )
    return finished


# --------------------------------------------------------------------------------------
# Mandates, as a pull needs them.


class MandateStanding(msgspec.Struct, frozen=True, kw_only=True):
    """What a pull checks of its mandate: whose it is, whether it may collect, in what."""

    customer_id: uuid.UUID
    status: str
    currency: str


async def mandate_facts(
    executor: Executor, *, region: str, tenant_id: int, mandate_id: uuid.UUID
) -> MandateStanding | None:
    """A mandate's owner, state and currency (never its bank details, which this domain has
    no use for), or None for no mandate of this tenant."""
    record = await executor.fetchrow(
        """SELECT customer_id, status, currency FROM mandates
            WHERE compliance_region = $1 AND id = $2 AND tenant_id = $3""",
        region,
        mandate_id,
        tenant_id,
    )
    return None if record is None else MandateStanding(**dict(record))
