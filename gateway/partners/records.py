"""Partners in Postgres: a row written with its audit record, read by id, by ids (for the
orchestration's sends) or a page at a time, and resealed after a key rotation.

Nothing here sees a plaintext secret: the service seals before it writes and opens after
it reads (`gateway.partners.service`)."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence

import asyncpg
import msgspec

from compliance.audit.outbox import outbox_insert_one
from gateway.http.paging import KeysetQuery, Page, PageRequest, Position, positions
from ledger.invariants import ensure, unreachable

# A connection of the pool, or one of its own (tests, the CLI).
Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
partners_page_max = 100
# The most partners one read by ids fetches: the distinct partners of a batch of orders.
partners_by_ids_max = 1_000

_columns = """id, tenant_id, kind, name, currency, adapter, reference, url, secret_sealed,
              ledger_number, status, created_at"""


class PartnerRow(msgspec.Struct, frozen=True, kw_only=True):
    """A `partners` row as stored: the secret sealed."""

    id: uuid.UUID
    tenant_id: int
    kind: str
    name: str
    currency: str
    adapter: str
    reference: str
    url: str | None
    secret_sealed: str | None
    ledger_number: int
    status: str
    created_at: datetime.datetime


class NewPartner(msgspec.Struct, frozen=True, kw_only=True):
    """What creating a partner writes: the row (its ledger number drawn by the database)."""

    id: uuid.UUID
    tenant_id: int
    kind: str
    name: str
    currency: str
    adapter: str
    reference: str
    url: str | None
    secret_sealed: str | None


AuditRow = tuple[uuid.UUID, str, str, str, str]


def _row(record: asyncpg.Record) -> PartnerRow:
    return PartnerRow(**dict(record))


_insert = f"""
    INSERT INTO partners (id, tenant_id, kind, name, currency, adapter, reference, url,
                          secret_sealed)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
    ON CONFLICT (id) DO NOTHING RETURNING {_columns}"""  # noqa: S608 - fixed column list.
_select_one = f"SELECT {_columns} FROM partners WHERE id = $1 AND tenant_id = $2"  # noqa: S608 - fixed.
_select_by_ids = f"SELECT {_columns} FROM partners WHERE id = ANY($1::uuid[])"  # noqa: S608


async def insert_partner(
    pool: asyncpg.Pool, new: NewPartner, audit: AuditRow
) -> tuple[PartnerRow, bool]:
    """Store the partner and its audit record in one transaction: the stored row and True,
    or the row stored under this id before (a retry) and False, nothing written."""
    async with pool.acquire() as connection, connection.transaction():
        record = await connection.fetchrow(
            _insert,
            new.id,
            new.tenant_id,
            new.kind,
            new.name,
            new.currency,
            new.adapter,
            new.reference,
            new.url,
            new.secret_sealed,
        )
        if record is not None:
            await connection.execute(outbox_insert_one, *audit)
            return _row(record), True
        stored = await connection.fetchrow(_select_one, new.id, new.tenant_id)
    if stored is None:
        # An id derives from the tenant (and its idempotency key): the row is the tenant's.
        unreachable(f"partner {new.id} exists and is not tenant {new.tenant_id}'s")
    return _row(stored), False


async def get_partner(
    pool: asyncpg.Pool, *, tenant_id: int, partner_id: uuid.UUID
) -> PartnerRow | None:
    """The tenant's partner; another tenant's is not found."""
    record = await pool.fetchrow(_select_one, partner_id, tenant_id)
    return None if record is None else _row(record)


async def partners_by_ids(pool: asyncpg.Pool, partner_ids: Sequence[uuid.UUID]) -> list[PartnerRow]:
    """The partners of these ids that exist, in one query, whatever their tenants (the
    caller checks each order's tenant against its partner's)."""
    ensure(len(partner_ids) <= partners_by_ids_max, "a read by ids is bounded")
    if not partner_ids:
        return []
    return [_row(record) for record in await pool.fetch(_select_by_ids, list(partner_ids))]


_partner_pages = KeysetQuery(
    f"SELECT {_columns} FROM partners WHERE tenant_id = $1",  # noqa: S608 - fixed columns.
    kind=positions,
)


async def list_partners(
    pool: asyncpg.Pool, *, tenant_id: int, page: PageRequest[Position]
) -> Page[PartnerRow]:
    """A page of the tenant's partners, oldest first."""
    return await _partner_pages.page(pool, page, tenant_id, row=_row)


async def sealed_secrets(connection: Connection) -> list[tuple[uuid.UUID, str]]:
    """Every stored secret with its partner's id, locked until the transaction ends."""
    records = await connection.fetch(
        "SELECT id, secret_sealed FROM partners WHERE secret_sealed IS NOT NULL FOR UPDATE"
    )
    return [(record["id"], record["secret_sealed"]) for record in records]


async def store_secrets(connection: Connection, changed: Sequence[tuple[uuid.UUID, str]]) -> None:
    """Write each partner's resealed secret, in one statement."""
    if not changed:
        return
    ids, secrets = (list(column) for column in zip(*changed, strict=True))
    await connection.execute(
        """UPDATE partners p SET secret_sealed = r.secret_sealed
             FROM unnest($1::uuid[], $2::text[]) AS r(id, secret_sealed)
            WHERE p.id = r.id""",
        ids,
        secrets,
    )
