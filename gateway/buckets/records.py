"""Buckets, rules, allocation plans and their lines in Postgres (migration 0022).

Writes that belong together take the caller's connection, inside its transaction: a bucket
with its `bucket.created` event, a rule with its audit record, a run's plan with its lines
(inside the orchestration's own transaction). Reads take the pool."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec

from gateway.buckets.rules import PeriodTotals, period_end, period_start, periods
from gateway.http.paging import KeysetQuery, Page, PageRequest, Position, positions
from ledger.invariants import ensure

# A connection of the pool, or the pool itself for a single statement.
Executor = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy | asyncpg.Pool
Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
page_max = 100
# The most rules one evaluation reads: above every configurable per-customer limit.
rules_read_max = 1_000
# The most lines one plan writes: one per live rule at most.
lines_per_plan_max = rules_read_max

_bucket_columns = """id, tenant_id, customer_id, kind, name, currency, sub_account, partner_id,
                     partner_ledger_number, account_reference, target_amount_minor, created_at"""
_rule_columns = """id, tenant_id, customer_id, bucket_id, kind, priority, percent_bps,
                   amount_minor, above_minor, minimum_left_minor, cap_minor, cap_period,
                   days_of_month, active_from, active_until, created_at, deleted_at"""
_line_columns = """id, orchestration_id, position, tenant_id, customer_id, rule_id, bucket_id,
                   bucket_sub_account, partner_id, partner_ledger_number, account_reference,
                   currency, amount_minor, allocated_at"""


class BucketRow(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    tenant_id: int
    customer_id: uuid.UUID
    kind: str
    name: str
    currency: str
    sub_account: int
    partner_id: uuid.UUID | None
    partner_ledger_number: int | None
    account_reference: str | None
    target_amount_minor: int | None
    created_at: datetime.datetime


class RuleRow(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    tenant_id: int
    customer_id: uuid.UUID
    bucket_id: uuid.UUID
    kind: str
    priority: int
    percent_bps: int | None
    amount_minor: int | None
    above_minor: int | None
    minimum_left_minor: int | None
    cap_minor: int | None
    cap_period: str | None
    days_of_month: list[int] | None
    active_from: datetime.datetime | None
    active_until: datetime.datetime | None
    created_at: datetime.datetime
    deleted_at: datetime.datetime | None


class LiveRule(msgspec.Struct, frozen=True, kw_only=True):
    """A live rule with what its allocation line copies from its bucket."""

    rule: RuleRow
    bucket_sub_account: int
    partner_id: uuid.UUID | None
    partner_ledger_number: int | None
    account_reference: str | None


class LineRow(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    orchestration_id: uuid.UUID
    position: int
    tenant_id: int
    customer_id: uuid.UUID
    rule_id: uuid.UUID
    bucket_id: uuid.UUID
    bucket_sub_account: int
    partner_id: uuid.UUID | None
    partner_ledger_number: int | None
    account_reference: str | None
    currency: str
    amount_minor: int
    allocated_at: datetime.datetime


class PlanRow(msgspec.Struct, frozen=True, kw_only=True):
    compliance_region: str
    orchestration_id: uuid.UUID
    tenant_id: int
    customer_id: uuid.UUID
    currency: str
    amount_minor: int
    unallocated_minor: int
    allocated_at: datetime.datetime


class Event(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    tenant_id: int
    type: str
    object_id: uuid.UUID
    payload: str  # JSON.


def _bucket(record: asyncpg.Record) -> BucketRow:
    return BucketRow(**dict(record))


def _rule(record: asyncpg.Record) -> RuleRow:
    return RuleRow(**dict(record))


def _line(record: asyncpg.Record) -> LineRow:
    return LineRow(**dict(record))


async def lock_customer(connection: Connection, customer_id: uuid.UUID) -> None:
    """Serialise this transaction with every other changing the customer's buckets or
    rules, so a limit counted here still holds at commit."""
    key = int.from_bytes(customer_id.bytes[:8], "big", signed=True)
    await connection.execute("SELECT pg_advisory_xact_lock($1)", key)


# --------------------------------------------------------------------------------------
# Buckets.


async def next_sub_account(pool: asyncpg.Pool) -> int:
    """A sub-account number never given to another bucket (a gap is harmless)."""
    number: int = await pool.fetchval("SELECT nextval('bucket_sub_accounts')")
    return number


async def count_buckets(connection: Connection, *, tenant_id: int, customer_id: uuid.UUID) -> int:
    count: int = await connection.fetchval(
        "SELECT count(*) FROM buckets WHERE tenant_id = $1 AND customer_id = $2",
        tenant_id,
        customer_id,
    )
    return count


async def insert_bucket(connection: Connection, row: BucketRow, event: Event) -> BucketRow | None:
    """The bucket and its event, or None when a bucket with this id exists (a retry)."""
    record = await connection.fetchrow(
        f"""INSERT INTO buckets (id, tenant_id, customer_id, kind, name, currency, sub_account,
                                 partner_id, partner_ledger_number, account_reference,
                                 target_amount_minor)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
            ON CONFLICT (id) DO NOTHING RETURNING {_bucket_columns}""",  # noqa: S608 - fixed columns.
        row.id,
        row.tenant_id,
        row.customer_id,
        row.kind,
        row.name,
        row.currency,
        row.sub_account,
        row.partner_id,
        row.partner_ledger_number,
        row.account_reference,
        row.target_amount_minor,
    )
    if record is None:
        return None
    await insert_events(connection, [event])
    return _bucket(record)


async def get_bucket(
    executor: Executor, *, tenant_id: int, bucket_id: uuid.UUID
) -> BucketRow | None:
    record = await executor.fetchrow(
        f"SELECT {_bucket_columns} FROM buckets WHERE id = $1 AND tenant_id = $2",  # noqa: S608
        bucket_id,
        tenant_id,
    )
    return None if record is None else _bucket(record)


_bucket_pages = KeysetQuery(
    f"SELECT {_bucket_columns} FROM buckets "  # noqa: S608 - fixed column list.
    "WHERE tenant_id = $1 AND customer_id = $2",
    kind=positions,
)


async def list_buckets(
    pool: asyncpg.Pool, *, tenant_id: int, customer_id: uuid.UUID, page: PageRequest[Position]
) -> Page[BucketRow]:
    return await _bucket_pages.page(pool, page, tenant_id, customer_id, row=_bucket)


# --------------------------------------------------------------------------------------
# Rules.


async def count_live_rules(
    connection: Connection, *, tenant_id: int, customer_id: uuid.UUID
) -> int:
    count: int = await connection.fetchval(
        """SELECT count(*) FROM rules
            WHERE tenant_id = $1 AND customer_id = $2 AND deleted_at IS NULL""",
        tenant_id,
        customer_id,
    )
    return count


async def insert_rule(connection: Connection, row: RuleRow) -> RuleRow | None:
    """The rule, or None when a rule with this id exists (a retry)."""
    record = await connection.fetchrow(
        f"""INSERT INTO rules (id, tenant_id, customer_id, bucket_id, kind, priority,
                               percent_bps, amount_minor, above_minor, minimum_left_minor,
                               cap_minor, cap_period, days_of_month, active_from, active_until)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
            ON CONFLICT (id) DO NOTHING RETURNING {_rule_columns}""",  # noqa: S608 - fixed columns.
        row.id,
        row.tenant_id,
        row.customer_id,
        row.bucket_id,
        row.kind,
        row.priority,
        row.percent_bps,
        row.amount_minor,
        row.above_minor,
        row.minimum_left_minor,
        row.cap_minor,
        row.cap_period,
        row.days_of_month,
        row.active_from,
        row.active_until,
    )
    return None if record is None else _rule(record)


async def get_rule(
    executor: Executor, *, tenant_id: int, customer_id: uuid.UUID, rule_id: uuid.UUID
) -> RuleRow | None:
    record = await executor.fetchrow(
        f"SELECT {_rule_columns} FROM rules "  # noqa: S608 - fixed column list.
        "WHERE id = $1 AND tenant_id = $2 AND customer_id = $3",
        rule_id,
        tenant_id,
        customer_id,
    )
    return None if record is None else _rule(record)


async def delete_rule(
    connection: Connection, *, tenant_id: int, customer_id: uuid.UUID, rule_id: uuid.UUID
) -> RuleRow | None:
    """Mark the live rule deleted; None when there is no such live rule."""
    record = await connection.fetchrow(
        f"""UPDATE rules SET deleted_at = now()
             WHERE id = $1 AND tenant_id = $2 AND customer_id = $3 AND deleted_at IS NULL
         RETURNING {_rule_columns}""",  # noqa: S608 - fixed column list.
        rule_id,
        tenant_id,
        customer_id,
    )
    return None if record is None else _rule(record)


_rule_pages = KeysetQuery(
    f"SELECT {_rule_columns} FROM rules "  # noqa: S608 - fixed column list.
    "WHERE tenant_id = $1 AND customer_id = $2 AND deleted_at IS NULL",
    kind=positions,
)


async def list_rules(
    pool: asyncpg.Pool, *, tenant_id: int, customer_id: uuid.UUID, page: PageRequest[Position]
) -> Page[RuleRow]:
    """A page of the customer's live rules, oldest first."""
    return await _rule_pages.page(pool, page, tenant_id, customer_id, row=_rule)


async def live_rules(
    pool: asyncpg.Pool, *, tenant_id: int, customer_id: uuid.UUID, currency: str
) -> list[LiveRule]:
    """The customer's live rules on buckets of `currency`, each with its bucket's ledger
    and partner facts (at most `rules_read_max`)."""
    records = await pool.fetch(
        """SELECT r.id, r.tenant_id, r.customer_id, r.bucket_id, r.kind, r.priority,
                  r.percent_bps, r.amount_minor, r.above_minor, r.minimum_left_minor,
                  r.cap_minor, r.cap_period, r.days_of_month, r.active_from, r.active_until,
                  r.created_at, r.deleted_at, b.sub_account AS bucket_sub_account,
                  b.partner_id AS bucket_partner_id,
                  b.partner_ledger_number AS bucket_partner_ledger_number,
                  b.account_reference AS bucket_account_reference
             FROM rules r JOIN buckets b ON b.id = r.bucket_id
            WHERE r.tenant_id = $1 AND r.customer_id = $2 AND r.deleted_at IS NULL
              AND b.tenant_id = $1 AND b.customer_id = $2 AND b.currency = $3
            ORDER BY r.priority, r.created_at, r.id
            LIMIT $4""",
        tenant_id,
        customer_id,
        currency,
        rules_read_max,
    )
    return [_live_rule(record) for record in records]


def _live_rule(record: asyncpg.Record) -> LiveRule:
    values = dict(record)
    return LiveRule(
        bucket_sub_account=values.pop("bucket_sub_account"),
        partner_id=values.pop("bucket_partner_id"),
        partner_ledger_number=values.pop("bucket_partner_ledger_number"),
        account_reference=values.pop("bucket_account_reference"),
        rule=RuleRow(**values),
    )


async def period_totals(
    pool: asyncpg.Pool,
    *,
    tenant_id: int,
    rule_ids: Sequence[uuid.UUID],
    at: datetime.datetime,
    excluding_orchestration: uuid.UUID | None,
) -> dict[uuid.UUID, PeriodTotals]:
    """What each rule allocated in the UTC day, ISO week and month of `at`, from the lines
    recorded by runs other than `excluding_orchestration`, in one query."""
    if not rule_ids:
        return {}
    bounds = [(period_start(p, at), period_end(p, at)) for p in periods]  # type: ignore[arg-type]
    (day, week, month) = bounds
    records = await pool.fetch(
        """SELECT rule_id,
                  coalesce(sum(amount_minor) FILTER (WHERE allocated_at >= $4
                                                       AND allocated_at < $5), 0) AS day_minor,
                  coalesce(sum(amount_minor) FILTER (WHERE allocated_at >= $6
                                                       AND allocated_at < $7), 0) AS week_minor,
                  coalesce(sum(amount_minor) FILTER (WHERE allocated_at >= $8
                                                       AND allocated_at < $9), 0) AS month_minor
             FROM allocation_lines
            WHERE tenant_id = $1 AND rule_id = ANY($2::uuid[])
              AND orchestration_id IS DISTINCT FROM $3
              AND allocated_at >= least($6, $8) AND allocated_at < greatest($7, $9)
            GROUP BY rule_id""",
        tenant_id,
        list(rule_ids),
        excluding_orchestration,
        *day,
        *week,
        *month,
    )
    return {
        record["rule_id"]: PeriodTotals(
            day_minor=record["day_minor"],
            week_minor=record["week_minor"],
            month_minor=record["month_minor"],
        )
        for record in records
    }


# --------------------------------------------------------------------------------------
# Plans and their lines.


async def insert_plan(connection: Connection, plan: PlanRow, lines: Sequence[LineRow]) -> bool:
    """The run's plan and its lines, unless the run has a plan already (then nothing is
    written): whether this call wrote them. Two transactions recording one run queue on
    the plan's key, and the second writes nothing."""
    ensure(len(lines) <= lines_per_plan_max, "a plan has at most lines_per_plan_max lines")
    inserted = await connection.fetchval(
        """INSERT INTO allocation_plans (compliance_region, orchestration_id, tenant_id,
                                         customer_id, currency, amount_minor,
                                         unallocated_minor, allocated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT DO NOTHING RETURNING true""",
        plan.compliance_region,
        plan.orchestration_id,
        plan.tenant_id,
        plan.customer_id,
        plan.currency,
        plan.amount_minor,
        plan.unallocated_minor,
        plan.allocated_at,
    )
    if not inserted:
        return False
    if lines:
        columns = _line_columns.replace("\n", " ")
        await connection.execute(
            f"""INSERT INTO allocation_lines (compliance_region, {columns})
                SELECT $1, * FROM unnest($2::uuid[], $3::uuid[], $4::smallint[], $5::bigint[],
                                         $6::uuid[], $7::uuid[], $8::uuid[], $9::bigint[],
                                         $10::uuid[], $11::bigint[], $12::text[], $13::text[],
                                         $14::bigint[], $15::timestamptz[])""",  # noqa: S608
            plan.compliance_region,
            *_line_arrays(lines),
        )
    return True


def _line_arrays(lines: Sequence[LineRow]) -> list[list[Any]]:
    fields = [name.strip() for name in _line_columns.split(",")]
    return [[getattr(line, field) for line in lines] for field in fields]


async def lines_of(executor: Executor, *, orchestration_id: uuid.UUID) -> list[LineRow]:
    """The run's lines, in the order its rules applied."""
    records = await executor.fetch(
        f"SELECT {_line_columns} FROM allocation_lines "  # noqa: S608 - fixed column list.
        "WHERE orchestration_id = $1 ORDER BY position LIMIT $2",
        orchestration_id,
        lines_per_plan_max,
    )
    return [_line(record) for record in records]


# --------------------------------------------------------------------------------------
# Events.


async def insert_events(connection: Connection, events: Sequence[Event]) -> None:
    """The events, in one statement; an event written before (same id) is not again."""
    if not events:
        return
    await connection.execute(
        """INSERT INTO events (id, tenant_id, type, object_id, payload)
           SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::uuid[], $5::jsonb[])
           ON CONFLICT DO NOTHING""",
        [event.id for event in events],
        [event.tenant_id for event in events],
        [event.type for event in events],
        [event.object_id for event in events],
        [event.payload for event in events],
    )
