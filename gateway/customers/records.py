"""Customers in Postgres: sealed rows written with their `customer.created` event, read by
id or a page at a time (optionally by blind index), and resealed after a key rotation.

Nothing here sees a plaintext name, email or external id: the service seals before it
writes and opens after it reads (`gateway.customers.service`)."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence

import asyncpg
import msgspec

from gateway.http.paging import KeysetQuery, Page, PageRequest, Position, positions
from ledger.invariants import ensure

# A connection of the pool, or one of its own (tests, the CLI).
Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
customers_page_max = 100
# Rows one reseal transaction rewrites: a bounded lock set and statement size.
reseal_batch_size = 500

_columns = """id, compliance_region, tenant_id, name_sealed, email_sealed,
              external_id_sealed, country, index_key_id, created_at"""


class CustomerRow(msgspec.Struct, frozen=True, kw_only=True):
    """A `customers` row as stored: personal data sealed."""

    id: uuid.UUID
    compliance_region: str
    tenant_id: int
    name_sealed: str
    email_sealed: str | None
    external_id_sealed: str | None
    country: str
    index_key_id: str
    created_at: datetime.datetime


class NewCustomer(msgspec.Struct, frozen=True, kw_only=True):
    """What creating a customer writes: the sealed row, its indexes and its event."""

    id: uuid.UUID
    compliance_region: str
    tenant_id: int
    name_sealed: str
    email_sealed: str | None
    external_id_sealed: str | None
    country: str
    email_index: bytes | None
    external_id_index: bytes | None
    index_key_id: str
    # Indexes of the external id under every configured key: a row indexed before a key
    # rotation (not yet resealed) still holds it.
    external_id_candidates: list[bytes]
    event_id: uuid.UUID
    event_payload: str


class Resealed(msgspec.Struct, frozen=True, kw_only=True):
    """A row's sealed values and indexes under the current key."""

    compliance_region: str
    id: uuid.UUID
    name_sealed: str
    email_sealed: str | None
    external_id_sealed: str | None
    email_index: bytes | None
    external_id_index: bytes | None
    index_key_id: str


def _row(record: asyncpg.Record) -> CustomerRow:
    return CustomerRow(**dict(record))


async def insert_customer(pool: asyncpg.Pool, new: NewCustomer) -> CustomerRow | None:
    """Store the customer and its event in one transaction; the stored row (the first one,
    when this id was stored before), or None when another customer of the tenant has the
    external id (nothing is stored)."""
    async with pool.acquire() as connection, connection.transaction():
        if new.external_id_index is not None:
            # Two creations with one external id queue here, so the check below sees the
            # other's row: the unique index alone misses a row indexed under an older key.
            lock = int.from_bytes(new.external_id_index[:8], "big", signed=True)
            await connection.execute("SELECT pg_advisory_xact_lock($1)", lock)
        stored = await _get(connection, new.compliance_region, new.tenant_id, new.id)
        if stored is not None:
            return stored
        if new.external_id_candidates and await connection.fetchval(
            """SELECT EXISTS (SELECT 1 FROM customers
                  WHERE compliance_region = $1 AND tenant_id = $2
                    AND external_id_index = ANY($3::bytea[]))""",
            new.compliance_region,
            new.tenant_id,
            new.external_id_candidates,
        ):
            return None
        record = await connection.fetchrow(
            f"""INSERT INTO customers (id, compliance_region, tenant_id, name_sealed,
                                       email_sealed, external_id_sealed, country, email_index,
                                       external_id_index, index_key_id)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                ON CONFLICT DO NOTHING RETURNING {_columns}""",  # noqa: S608 - fixed columns.
            new.id,
            new.compliance_region,
            new.tenant_id,
            new.name_sealed,
            new.email_sealed,
            new.external_id_sealed,
            new.country,
            new.email_index,
            new.external_id_index,
            new.index_key_id,
        )
        if record is None:
            return None
        await connection.execute(
            """INSERT INTO events (id, tenant_id, type, object_id, payload)
               VALUES ($1, $2, 'customer.created', $3, $4) ON CONFLICT DO NOTHING""",
            new.event_id,
            new.tenant_id,
            new.id,
            new.event_payload,
        )
    return _row(record)


async def _get(
    connection: Connection, region: str, tenant_id: int, customer_id: uuid.UUID
) -> CustomerRow | None:
    record = await connection.fetchrow(
        f"SELECT {_columns} FROM customers "  # noqa: S608 - fixed column list.
        "WHERE compliance_region = $1 AND id = $2 AND tenant_id = $3",
        region,
        customer_id,
        tenant_id,
    )
    return None if record is None else _row(record)


async def get_customer(
    pool: asyncpg.Pool, *, tenant_id: int, customer_id: uuid.UUID
) -> CustomerRow | None:
    """The tenant's customer, in whichever region it lives; another tenant's is not found."""
    record = await pool.fetchrow(
        f"SELECT {_columns} FROM customers "  # noqa: S608 - fixed column list.
        "WHERE id = $1 AND tenant_id = $2",
        customer_id,
        tenant_id,
    )
    return None if record is None else _row(record)


_customer_pages = KeysetQuery(
    f"SELECT {_columns} FROM customers "  # noqa: S608 - fixed column list.
    """WHERE compliance_region = $1 AND tenant_id = $2
         AND ($3::bytea[] IS NULL OR external_id_index = ANY($3::bytea[]))
         AND ($4::bytea[] IS NULL OR email_index = ANY($4::bytea[]))""",
    kind=positions,
)


async def list_customers(
    pool: asyncpg.Pool,
    *,
    region: str,
    tenant_id: int,
    external_id_candidates: Sequence[bytes] | None,
    email_candidates: Sequence[bytes] | None,
    page: PageRequest[Position],
) -> Page[CustomerRow]:
    """A page of the tenant's customers, oldest first; those whose external id or email
    index is among the candidates, when given."""
    return await _customer_pages.page(
        pool,
        page,
        region,
        tenant_id,
        None if external_id_candidates is None else list(external_id_candidates),
        None if email_candidates is None else list(email_candidates),
        row=_row,
    )


async def rows_to_reseal(
    connection: Connection, *, box_key_id: str, index_key_id: str
) -> list[CustomerRow]:
    """Up to `reseal_batch_size` rows sealed or indexed under another key than the current
    ones, locked until the transaction ends."""
    sealed_now = f"sealed:v1:{box_key_id}:%"
    records = await connection.fetch(
        f"SELECT {_columns} FROM customers "  # noqa: S608 - fixed column list.
        """WHERE index_key_id <> $1 OR name_sealed NOT LIKE $2
              OR email_sealed NOT LIKE $2 OR external_id_sealed NOT LIKE $2
            ORDER BY compliance_region, id LIMIT $3 FOR UPDATE""",
        index_key_id,
        sealed_now,
        reseal_batch_size,
    )
    return [_row(record) for record in records]


async def store_resealed(connection: Connection, rows: Sequence[Resealed]) -> None:
    """Write every row's new sealed values and indexes in one statement."""
    ensure(len(rows) <= reseal_batch_size, "a reseal batch is bounded")
    if not rows:
        return
    await connection.execute(
        """UPDATE customers c
              SET name_sealed = r.name_sealed, email_sealed = r.email_sealed,
                  external_id_sealed = r.external_id_sealed, email_index = r.email_index,
                  external_id_index = r.external_id_index, index_key_id = r.index_key_id,
                  updated_at = now()
             FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[],
                         $6::bytea[], $7::bytea[], $8::text[])
                  AS r(compliance_region, id, name_sealed, email_sealed, external_id_sealed,
                       email_index, external_id_index, index_key_id)
            WHERE c.compliance_region = r.compliance_region AND c.id = r.id""",
        *(
            [getattr(row, field) for row in rows]
            for field in (
                "compliance_region",
                "id",
                "name_sealed",
                "email_sealed",
                "external_id_sealed",
                "email_index",
                "external_id_index",
                "index_key_id",
            )
        ),
    )
