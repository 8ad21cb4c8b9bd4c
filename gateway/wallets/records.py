"""Metadata of money objects (holds, deposits): batched inserts and reads.

The row is the intent, written before the ledger: what the client asked for (amount,
currency, reference). TigerBeetle is the truth for balances and state. A row whose ledger
write was refused carries `rejected_code`; the reconciler marks rows whose ledger write never
happened (the process died in between).
"""

from __future__ import annotations

import datetime
import uuid

import asyncpg
import msgspec

from gateway.infra.database.batch import BatchStatement

hold_insert = BatchStatement(
    table="holds",
    row_type="holds_batch_row",
    columns=(
        "id",
        "compliance_region",
        "tenant_id",
        "currency",
        "amount_minor",
        "timeout_seconds",
        "reference",
    ),
    types=("uuid", "text", "bigint", "text", "bigint", "integer", "text"),
    on_conflict="ON CONFLICT DO NOTHING",
)
deposit_insert = BatchStatement(
    table="deposits",
    row_type="deposits_batch_row",
    columns=("id", "compliance_region", "tenant_id", "currency", "amount_minor", "reference"),
    types=("uuid", "text", "bigint", "text", "bigint", "text"),
    on_conflict="ON CONFLICT DO NOTHING",
)


class HoldRow(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    tenant_id: int
    currency: str
    amount_minor: int
    timeout_seconds: int
    reference: str | None
    rejected_code: str | None
    created_at: datetime.datetime


class DepositRow(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    tenant_id: int
    currency: str
    amount_minor: int
    reference: str | None
    rejected_code: str | None
    created_at: datetime.datetime


async def get_hold(
    pool: asyncpg.Pool, *, compliance_region: str, tenant_id: int, hold_id: uuid.UUID
) -> HoldRow | None:
    """The tenant's hold; another tenant's hold is simply not found."""
    row = await pool.fetchrow(
        """SELECT id, tenant_id, currency, amount_minor, timeout_seconds, reference,
                  rejected_code, created_at
             FROM holds WHERE compliance_region = $1 AND id = $2 AND tenant_id = $3""",
        compliance_region,
        hold_id,
        tenant_id,
    )
    return None if row is None else HoldRow(**dict(row))


async def get_deposit(
    pool: asyncpg.Pool, *, compliance_region: str, tenant_id: int, deposit_id: uuid.UUID
) -> DepositRow | None:
    row = await pool.fetchrow(
        """SELECT id, tenant_id, currency, amount_minor, reference, rejected_code, created_at
             FROM deposits WHERE compliance_region = $1 AND id = $2 AND tenant_id = $3""",
        compliance_region,
        deposit_id,
        tenant_id,
    )
    return None if row is None else DepositRow(**dict(row))


async def mark_rejected(
    pool: asyncpg.Pool, *, table: str, compliance_region: str, object_id: uuid.UUID, code: str
) -> None:
    """Record that the ledger refused the object (rare path: one statement, no batching)."""
    if table not in ("holds", "deposits"):
        raise ValueError(f"unknown money table {table!r}")
    await pool.execute(
        f"UPDATE {table} SET rejected_code = $3 WHERE compliance_region = $1 AND id = $2",  # noqa: S608 - table is from a fixed set.
        compliance_region,
        object_id,
        code,
    )
