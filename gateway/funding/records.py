"""Bank statements and their entries in Postgres (migration 0020): recorded once, settled,
listed.

Each write takes a batch in one statement (`unnest`), whatever the number of entries a file
carries. A statement is recorded once by its account and message and once by its file; an
entry once by its id (derived from the account and the bank's reference for it); a
statement's list of entries once by position. Settling moves an entry out of its pending
status only, so a second settlement of the same entry (a file ingested twice at once)
changes nothing.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence

import asyncpg
import msgspec

from gateway.http.paging import KeysetQuery, NumberCursors, Page, PageRequest, Position, positions
from ledger.invariants import ensure

Executor = asyncpg.Pool | asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
statements_page_max = 100
entries_page_max = 500
entry_positions = NumberCursors(
    value_max=2**31 - 1, columns=("position",), column_types=("integer",)
)
pending_statuses = ("pending_credit", "pending_suspense")


class NewStatement(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    kind: str
    message_type: str
    message_id: str
    report_id: str
    account: str
    currency: str
    file_sha256: bytes
    bank_created_at: datetime.datetime
    opening_balance_minor: int | None
    opening_balance_date: datetime.date | None
    closing_balance_minor: int | None
    closing_balance_date: datetime.date | None
    entry_count: int
    not_booked_count: int
    ingested_by: str


class StatementRow(NewStatement, frozen=True, kw_only=True):
    status: str
    created_at: datetime.datetime
    processed_at: datetime.datetime | None


class NewEntry(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    statement_id: uuid.UUID
    account: str
    entry_key: str
    key_source: str
    currency: str
    amount_minor: int
    direction: str
    booking_date: datetime.date | None
    value_date: datetime.date | None
    remittance: str | None
    creditor_reference: str | None
    end_to_end_id: str | None
    status: str
    suspense_reason: str | None
    tenant_id: int | None


class EntryRow(NewEntry, frozen=True, kw_only=True):
    created_at: datetime.datetime
    settled_at: datetime.datetime | None


class StatementLine(msgspec.Struct, frozen=True, kw_only=True):
    """An entry as one statement listed it, at `position`."""

    position: int
    entry: EntryRow


class Settlement(msgspec.Struct, frozen=True, kw_only=True):
    """An entry leaving its pending status: `status` and why, when it is suspense."""

    entry_id: uuid.UUID
    status: str
    suspense_reason: str | None = None


_statement_columns = tuple(NewStatement.__struct_fields__)
_entry_columns = tuple(NewEntry.__struct_fields__)
_statement_types = ("uuid", "text", "text", "text", "text", "text", "text", "bytea",
                    "timestamptz", "bigint", "date", "bigint", "date", "integer", "integer",
                    "text")  # fmt: skip
_entry_types = ("uuid", "uuid", "text", "text", "text", "text", "bigint", "text", "date", "date",
                "text", "text", "text", "text", "text", "bigint")  # fmt: skip
ensure(len(_statement_columns) == len(_statement_types), "one type per statement column")
ensure(len(_entry_columns) == len(_entry_types), "one type per entry column")


def _unnest(columns: Sequence[str], types: Sequence[str]) -> str:
    return ", ".join(f"${i}::{t}[]" for i, t in enumerate(types, start=1))


_insert_statements = f"""
INSERT INTO bank_statements ({", ".join(_statement_columns)}, status)
SELECT *, 'processing' FROM unnest({_unnest(_statement_columns, _statement_types)})
ON CONFLICT DO NOTHING RETURNING id"""  # noqa: S608 - fixed column lists.
_existing_statements = f"""
SELECT {", ".join(_statement_columns)}, status, created_at, processed_at FROM bank_statements
WHERE (account, message_id, report_id) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))
   OR (file_sha256, report_id) IN (SELECT * FROM unnest($4::bytea[], $3::text[]))"""  # noqa: S608
_insert_entries = f"""
INSERT INTO bank_entries ({", ".join(_entry_columns)})
SELECT * FROM unnest({_unnest(_entry_columns, _entry_types)})
ON CONFLICT DO NOTHING"""  # noqa: S608 - fixed column lists.
_insert_lines = """
INSERT INTO bank_statement_entries (statement_id, position, entry_id)
SELECT * FROM unnest($1::uuid[], $2::integer[], $3::uuid[]) ON CONFLICT DO NOTHING"""
_entry_select = f"""SELECT {", ".join(f"e.{c}" for c in _entry_columns)}, e.created_at,
    e.settled_at FROM bank_entries e"""  # noqa: S608 - fixed column lists.
_pending = f"{_entry_select} WHERE e.id = ANY($1::uuid[]) AND e.status IN ('pending_credit', 'pending_suspense') ORDER BY e.id"  # noqa: E501
_settle = """
UPDATE bank_entries e SET status = s.status, suspense_reason = s.reason, settled_at = now()
FROM unnest($1::uuid[], $2::text[], $3::text[]) AS s (id, status, reason)
WHERE e.id = s.id AND e.status IN ('pending_credit', 'pending_suspense')
RETURNING e.id"""
_reroute = """UPDATE bank_entries SET status = 'pending_suspense', suspense_reason = $2
WHERE id = ANY($1::uuid[]) AND status = 'pending_credit'"""
_processed = """UPDATE bank_statements SET status = 'processed', processed_at = now()
WHERE id = ANY($1::uuid[]) AND status = 'processing'"""
_release = """UPDATE bank_entries SET status = 'released', tenant_id = $2, settled_at = now()
WHERE id = $1 AND status = 'suspense' RETURNING id"""


def _statement(record: asyncpg.Record) -> StatementRow:
    return StatementRow(**{name: record[name] for name in StatementRow.__struct_fields__})


def _entry(record: asyncpg.Record) -> EntryRow:
    return EntryRow(**{name: record[name] for name in EntryRow.__struct_fields__})


async def record_statements(
    connection: Executor, statements: Sequence[NewStatement]
) -> list[StatementRow]:
    """Record the statements not recorded before; every one of them as stored (a statement
    recorded before comes back as it was, for the caller to compare)."""
    columns = [[getattr(s, name) for s in statements] for name in _statement_columns]
    await connection.fetch(_insert_statements, *columns)
    found = await connection.fetch(
        _existing_statements,
        [s.account for s in statements],
        [s.message_id for s in statements],
        [s.report_id for s in statements],
        [s.file_sha256 for s in statements],
    )
    return [_statement(record) for record in found]


async def record_entries(
    connection: Executor,
    entries: Sequence[NewEntry],
    lines: Sequence[tuple[uuid.UUID, int, uuid.UUID]],
) -> None:
    """Record the entries not recorded before (an entry already recorded keeps its status),
    and which statement listed which entry where."""
    if entries:
        columns = [[getattr(e, name) for e in entries] for name in _entry_columns]
        await connection.execute(_insert_entries, *columns)
    if lines:
        await connection.execute(
            _insert_lines, [line[0] for line in lines], [line[1] for line in lines],
            [line[2] for line in lines],
        )  # fmt: skip


async def pending_entries(executor: Executor, entry_ids: Sequence[uuid.UUID]) -> list[EntryRow]:
    """The entries among `entry_ids` decided and not yet moved in the ledger."""
    return [_entry(record) for record in await executor.fetch(_pending, list(entry_ids))]


async def reroute_to_suspense(
    executor: Executor, entry_ids: Sequence[uuid.UUID], *, reason: str
) -> None:
    """Decide for suspense the pending credits the ledger refused (no wallet): recorded
    before the money moves, so a repeat can never credit the wallet as well."""
    await executor.execute(_reroute, list(entry_ids), reason)


async def settle(connection: Executor, settlements: Sequence[Settlement]) -> set[uuid.UUID]:
    """Move entries out of their pending status; the ids this call moved."""
    records = await connection.fetch(
        _settle,
        [s.entry_id for s in settlements],
        [s.status for s in settlements],
        [s.suspense_reason for s in settlements],
    )
    return {record["id"] for record in records}


async def status_counts(executor: Executor, entry_ids: Sequence[uuid.UUID]) -> dict[str, int]:
    """How many of `entry_ids` are in each status."""
    records = await executor.fetch(
        "SELECT status, count(*) AS n FROM bank_entries WHERE id = ANY($1::uuid[]) GROUP BY status",
        list(entry_ids),
    )
    return {record["status"]: int(record["n"]) for record in records}


async def mark_processed(connection: Executor, statement_ids: Sequence[uuid.UUID]) -> None:
    await connection.execute(_processed, list(statement_ids))


async def mark_released(connection: Executor, entry_id: uuid.UUID, *, tenant_id: int) -> bool:
    """The suspense entry is released to the tenant; False if it was not in suspense."""
    return await connection.fetchval(_release, entry_id, tenant_id) is not None


async def get_statement(executor: Executor, statement_id: uuid.UUID) -> StatementRow | None:
    record = await executor.fetchrow(
        f"SELECT {', '.join(StatementRow.__struct_fields__)} FROM bank_statements WHERE id = $1",  # noqa: S608
        statement_id,
    )
    return None if record is None else _statement(record)


async def get_entry(executor: Executor, entry_id: uuid.UUID) -> EntryRow | None:
    record = await executor.fetchrow(f"{_entry_select} WHERE e.id = $1", entry_id)
    return None if record is None else _entry(record)


async def tenants_existing(executor: Executor, tenant_ids: Sequence[int]) -> set[int]:
    """Which of `tenant_ids` are tenants."""
    if not tenant_ids:
        return set()
    records = await executor.fetch(
        "SELECT id FROM tenants WHERE id = ANY($1::bigint[])", list(tenant_ids)
    )
    return {record["id"] for record in records}


async def collections_by_end_to_end_id(
    executor: Executor, end_to_end_ids: Sequence[str]
) -> dict[str, int]:
    """The tenant of each known collection among `end_to_end_ids` (the collections domain's
    table, migration 0019, read by the end-to-end id its index serves)."""
    if not end_to_end_ids:
        return {}
    records = await executor.fetch(
        "SELECT end_to_end_id, tenant_id FROM collections WHERE end_to_end_id = ANY($1::text[])",
        list(end_to_end_ids),
    )
    return {record["end_to_end_id"]: record["tenant_id"] for record in records}


_statement_pages = KeysetQuery(
    f"SELECT {', '.join(StatementRow.__struct_fields__)} FROM bank_statements WHERE true",  # noqa: S608
    kind=positions,
)
_line_pages = KeysetQuery(
    f"""SELECT l.position, {", ".join(f"e.{c}" for c in _entry_columns)}, e.created_at,
        e.settled_at FROM bank_statement_entries l JOIN bank_entries e ON e.id = l.entry_id
     WHERE l.statement_id = $1""",  # noqa: S608 - fixed column lists.
    kind=entry_positions,
    table="l",
)


async def statement_page(pool: asyncpg.Pool, page: PageRequest[Position]) -> Page[StatementRow]:
    """A page of statements, oldest first."""
    return await _statement_pages.page(pool, page, row=_statement)


async def line_page(
    pool: asyncpg.Pool, statement_id: uuid.UUID, page: PageRequest[int]
) -> Page[StatementLine]:
    """A page of a statement's entries, in the statement's order."""
    return await _line_pages.page(
        pool, page, statement_id,
        row=lambda record: StatementLine(position=record["position"], entry=_entry(record)),
    )  # fmt: skip
