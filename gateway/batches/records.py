"""Batches in Postgres: recorded in one transaction with bulk COPYs, read back per page.

Everything a batch's acceptance writes (the batch row, one transfer row per accepted item,
their outbox events, review cases, compliance audit records, and the refused items'
errors) goes in one transaction, so a batch exists with all of it or not at all. The batch
row is inserted first and conditionally: if a row with the batch's id is already there (an
earlier attempt recorded it, or the reconciler left its 'abandoned' tombstone), nothing
else is written and the caller learns which.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from typing import Any, Literal

import asyncpg
import msgspec

from compliance.audit.outbox import outbox_insert
from compliance.cases.records import case_insert
from gateway.batches import wire as batch_wire
from gateway.http.ids import encode_id
from gateway.http.paging import Page, PageRequest, index_page
from gateway.transfers.records import transfer_insert
from gateway.webhooks.records.events import event_insert

# The same columns as the single-transfer writes, so the two can never drift apart.
transfer_columns = (*transfer_insert.columns, "batch_id", "batch_item_index")
event_columns = event_insert.columns
case_columns = case_insert.columns
outbox_columns = outbox_insert.columns
error_columns = (
    "compliance_region",
    "batch_id",
    "tenant_id",
    "item_index",
    "code",
    "field",
    "message",
    "reference",
)
terminal_item_statuses = ("completed", "refunded", "cancelled", "blocked", "rejected")


class BatchRow(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    compliance_region: str
    tenant_id: int
    status: str
    atomic: bool
    item_count: int
    accepted_count: int
    nettings: list[batch_wire.BatchNetting]
    created_at: datetime.datetime
    completed_at: datetime.datetime | None


class BatchRecord(msgspec.Struct, frozen=True, kw_only=True):
    """Everything one accepted batch writes, as rows ready for COPY."""

    batch: BatchRow
    transfers: list[tuple[Any, ...]]
    events: list[tuple[Any, ...]]
    cases: list[tuple[Any, ...]]
    audit: list[tuple[Any, ...]]
    errors: list[tuple[Any, ...]]


Executor = asyncpg.Pool | asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
_nettings_encoder = msgspec.json.Encoder()
_nettings_decoder = msgspec.json.Decoder(list[batch_wire.BatchNetting])


async def record_batch(
    pool: asyncpg.Pool, record: BatchRecord
) -> Literal["created", "recorded", "abandoned"]:
    """Write the batch; "recorded" if an earlier attempt did, "abandoned" if the reconciler
    undid its ledger writes (then nothing is written)."""
    batch = record.batch
    async with pool.acquire() as connection, connection.transaction():
        inserted = await connection.fetchval(
            """INSERT INTO batches (id, compliance_region, tenant_id, status, atomic, item_count,
                                    accepted_count, nettings, created_at, updated_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
               ON CONFLICT DO NOTHING RETURNING id""",
            batch.id,
            batch.compliance_region,
            batch.tenant_id,
            batch.status,
            batch.atomic,
            batch.item_count,
            batch.accepted_count,
            _nettings_encoder.encode(batch.nettings).decode(),
            batch.created_at,
        )
        if inserted is None:
            status = await connection.fetchval(
                "SELECT status FROM batches WHERE compliance_region = $1 AND id = $2",
                batch.compliance_region,
                batch.id,
            )
            return "abandoned" if status == "abandoned" else "recorded"
        for table, columns, rows in (
            ("transfers", transfer_columns, record.transfers),
            ("events", event_columns, record.events),
            ("compliance_cases", case_columns, record.cases),
            ("audit_outbox", outbox_columns, record.audit),
            ("batch_item_errors", error_columns, record.errors),
        ):
            if rows:
                await connection.copy_records_to_table(table, records=rows, columns=columns)
    return "created"


_batch_columns = ", ".join(BatchRow.__struct_fields__)


async def get_batch(
    pool: Executor, *, region: str, tenant_id: int, batch_id: uuid.UUID
) -> BatchRow | None:
    """The tenant's batch; None for another tenant's, an unknown or an abandoned one."""
    row = await pool.fetchrow(
        f"SELECT {_batch_columns} FROM batches "  # noqa: S608 - fixed column list.
        "WHERE compliance_region = $1 AND id = $2 AND tenant_id = $3 AND status <> 'abandoned'",
        region,
        batch_id,
        tenant_id,
    )
    if row is None:
        return None
    values = dict(row)
    values["nettings"] = _nettings_decoder.decode(values["nettings"])
    return BatchRow(**values)


async def status_counts(pool: Executor, batch: BatchRow) -> dict[str, int]:
    """How many items are in each status (refused items count as `rejected`)."""
    rows = await pool.fetch(
        """SELECT status, count(*) AS n FROM transfers
            WHERE compliance_region = $1 AND batch_id = $2 GROUP BY status""",
        batch.compliance_region,
        batch.id,
    )
    counts = {row["status"]: int(row["n"]) for row in rows}
    rejected = batch.item_count - batch.accepted_count
    if rejected:
        counts["rejected"] = rejected
    return counts


async def item_page(
    pool: asyncpg.Pool, batch: BatchRow, page: PageRequest[int]
) -> Page[batch_wire.BatchItemResult]:
    """A page of the batch's items, accepted and refused, in item order: `page.limit` of
    them from the index its cursor names."""
    start = page.cursor or 0
    transfers = await pool.fetch(
        """SELECT id, batch_item_index, status, reference, source_currency, target_currency,
                  source_amount_minor, fee_minor, target_amount_minor, rail, failure_code
             FROM transfers
            WHERE compliance_region = $1 AND batch_id = $2
              AND batch_item_index >= $3 AND batch_item_index < $4""",
        batch.compliance_region,
        batch.id,
        start,
        start + page.limit,
    )
    errors = await pool.fetch(
        """SELECT item_index, code, field, message, reference FROM batch_item_errors
            WHERE compliance_region = $1 AND batch_id = $2
              AND item_index >= $3 AND item_index < $4""",
        batch.compliance_region,
        batch.id,
        start,
        start + page.limit,
    )
    results = [
        batch_wire.BatchItemResult(
            index=row["batch_item_index"],
            status=row["status"],
            transfer_id=encode_id("tr", row["id"].int),
            reference=row["reference"],
            source_currency=row["source_currency"],
            target_currency=row["target_currency"],
            source_amount=row["source_amount_minor"],
            fee_amount=row["fee_minor"],
            target_amount=row["target_amount_minor"],
            rail=row["rail"],
            failure_code=row["failure_code"],
        )
        for row in transfers
    ] + [
        batch_wire.BatchItemResult(
            index=row["item_index"],
            status="rejected",
            reference=row["reference"],
            error=batch_wire.ItemError(
                code=row["code"], field=row["field"], message=row["message"]
            ),
        )
        for row in errors
    ]
    return index_page(
        sorted(results, key=lambda result: result.index), page, count=batch.item_count
    )


async def list_messages(pool: asyncpg.Pool, batch: BatchRow) -> Sequence[asyncpg.Record]:
    return await pool.fetch(
        """SELECT message_type, rail, currency, number_of_transactions, control_sum_minor, xml,
                  created_at
             FROM batch_messages WHERE compliance_region = $1 AND batch_id = $2 ORDER BY rail""",
        batch.compliance_region,
        batch.id,
    )
