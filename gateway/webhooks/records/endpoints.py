"""Webhook endpoints in Postgres: create, list, read, update, delete and rotate the secret.

Secrets are stored sealed (`gateway.infra.sealing`, bound to the endpoint's id) and never read
back here: the API shows a secret once, from the value it just made, and only the delivery
worker opens them, to sign. Deleting is soft: deliveries keep naming their endpoint, and
what was pending for it is cancelled in the same transaction, so a deleted endpoint
receives nothing more.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping

import asyncpg
import msgspec

from gateway.http.paging import KeysetQuery, Page, PageRequest, Position, positions
from gateway.infra.sealing import SecretBox
from gateway.webhooks.errors import TooManyEndpoints
from ledger.invariants import ensure, unreachable

endpoints_per_tenant_max = 16
endpoints_page_max = 100
rotation_overlap_seconds_default = 24 * 3600
rotation_overlap_seconds_max = 7 * 24 * 3600
# Attempts in flight to one endpoint at once, across every delivery worker: what an endpoint
# gets unless its tenant asks otherwise, and the most it may ask for (migration 0015's CHECK;
# a worker sends at most `gateway.webhooks.worker.in_flight_max` in all).
in_flight_max_default = 8
in_flight_max_ceiling = 64
# What a tenant may change on an endpoint (PATCH); the secret changes by rotation only.
updatable_columns = frozenset({"url", "description", "enabled_events", "in_flight_max"})

_columns = """id, tenant_id, url, description, enabled_events, in_flight_max,
              previous_secret_expires_at, created_at, deleted_at"""


class EndpointRow(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    tenant_id: int
    url: str
    description: str | None
    enabled_events: list[str]
    in_flight_max: int
    previous_secret_expires_at: datetime.datetime | None
    created_at: datetime.datetime
    deleted_at: datetime.datetime | None


def _row(record: asyncpg.Record) -> EndpointRow:
    return EndpointRow(**dict(record))


async def create_endpoint(
    pool: asyncpg.Pool,
    box: SecretBox,
    *,
    endpoint_id: uuid.UUID,
    tenant_id: int,
    url: str,
    description: str | None,
    enabled_events: list[str],
    secret: str,
    in_flight_max: int = in_flight_max_default,
) -> EndpointRow:
    """A new endpoint, or `TooManyEndpoints` when the tenant has its maximum already."""
    async with pool.acquire() as connection, connection.transaction():
        # Serialises creations per tenant so two concurrent ones cannot both pass the count.
        await connection.execute("SELECT 1 FROM tenants WHERE id = $1 FOR NO KEY UPDATE", tenant_id)
        count = await connection.fetchval(
            """SELECT count(*) FROM webhook_endpoints
                WHERE tenant_id = $1 AND deleted_at IS NULL""",
            tenant_id,
        )
        if count >= endpoints_per_tenant_max:
            raise TooManyEndpoints(
                f"a tenant has at most {endpoints_per_tenant_max} webhook endpoints"
            )
        record = await connection.fetchrow(
            f"""INSERT INTO webhook_endpoints (id, tenant_id, url, description, enabled_events,
                                               secret, in_flight_max)
                VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_columns}""",  # noqa: S608 - fixed.
            endpoint_id,
            tenant_id,
            url,
            description,
            enabled_events,
            box.seal(secret, bound_to=endpoint_id.bytes),
            in_flight_max,
        )
    if record is None:
        unreachable("INSERT … RETURNING returns the row it inserted")
    return _row(record)


async def get_endpoint(
    pool: asyncpg.Pool, *, tenant_id: int, endpoint_id: uuid.UUID
) -> EndpointRow | None:
    record = await pool.fetchrow(
        f"SELECT {_columns} FROM webhook_endpoints "  # noqa: S608 - fixed column list.
        "WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL",
        endpoint_id,
        tenant_id,
    )
    return None if record is None else _row(record)


_endpoint_pages = KeysetQuery(
    f"SELECT {_columns} FROM webhook_endpoints "  # noqa: S608 - fixed column list.
    "WHERE tenant_id = $1 AND deleted_at IS NULL",
    kind=positions,
)


async def list_endpoints(
    pool: asyncpg.Pool, *, tenant_id: int, page: PageRequest[Position]
) -> Page[EndpointRow]:
    """A page of the tenant's endpoints (not the deleted ones), oldest first."""
    return await _endpoint_pages.page(pool, page, tenant_id, row=_row)


async def update_endpoint(
    pool: asyncpg.Pool,
    *,
    tenant_id: int,
    endpoint_id: uuid.UUID,
    changes: Mapping[str, str | int | list[str] | None],
) -> EndpointRow | None:
    """Set each of `changes` (column to value, columns of `updatable_columns` only) in one
    statement; None when the tenant has no such live endpoint. Attempts already claimed
    finish as they were sent; the next claim uses the new URL and bound, and events written
    from now on the new filter."""
    ensure(set(changes) <= updatable_columns, f"only {sorted(updatable_columns)} change")
    if not changes:
        return await get_endpoint(pool, tenant_id=tenant_id, endpoint_id=endpoint_id)
    # The column names are checked against `updatable_columns` above, never taken as given.
    assignments = ", ".join(f"{column} = ${index}" for index, column in enumerate(changes, 3))
    record = await pool.fetchrow(
        f"""UPDATE webhook_endpoints SET {assignments}
             WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL
         RETURNING {_columns}""",  # noqa: S608 - column names checked above.
        endpoint_id,
        tenant_id,
        *changes.values(),
    )
    return None if record is None else _row(record)


async def delete_endpoint(
    pool: asyncpg.Pool, *, tenant_id: int, endpoint_id: uuid.UUID
) -> EndpointRow | None:
    """Mark the endpoint deleted and cancel its pending deliveries, in one transaction."""
    async with pool.acquire() as connection, connection.transaction():
        record = await connection.fetchrow(
            f"""UPDATE webhook_endpoints SET deleted_at = now()
                 WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL
             RETURNING {_columns}""",  # noqa: S608 - fixed column list.
            endpoint_id,
            tenant_id,
        )
        if record is None:
            return None
        await connection.execute(
            """UPDATE webhook_deliveries SET status = 'cancelled', next_attempt_at = NULL
                WHERE endpoint_id = $1 AND status = 'pending'""",
            endpoint_id,
        )
    return _row(record)


async def rotate_secret(
    pool: asyncpg.Pool,
    box: SecretBox,
    *,
    tenant_id: int,
    endpoint_id: uuid.UUID,
    new_secret: str,
    overlap_seconds: int,
) -> EndpointRow | None:
    """Make `new_secret` the signing secret; the current one keeps signing as well until
    `overlap_seconds` from now (not at all with 0)."""
    record = await pool.fetchrow(
        f"""UPDATE webhook_endpoints
               SET previous_secret = CASE WHEN $4 > 0 THEN secret END,
                   previous_secret_expires_at =
                       CASE WHEN $4 > 0 THEN now() + make_interval(secs => $4) END,
                   secret = $3
             WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL
         RETURNING {_columns}""",  # noqa: S608 - fixed column list.
        endpoint_id,
        tenant_id,
        box.seal(new_secret, bound_to=endpoint_id.bytes),
        overlap_seconds,
    )
    return None if record is None else _row(record)


async def reseal_secrets(pool: asyncpg.Pool, box: SecretBox) -> int:
    """Seal every stored secret (current and previous) under the current key, including
    ones stored before sealing; the number of endpoints changed. Run after a key rotation,
    before the old key leaves KOVRA_SECRETS_KEYS_PREVIOUS."""
    async with pool.acquire() as connection, connection.transaction():
        records = await connection.fetch(
            "SELECT id, secret, previous_secret FROM webhook_endpoints FOR UPDATE"
        )
        changed = [
            (record["id"], *(_resealed(box, record[column], record["id"]) for column in _sealed))
            for record in records
            if not all(record[c] is None or box.is_current(record[c]) for c in _sealed)
        ]
        if changed:
            ids, secrets, previous = (list(column) for column in zip(*changed, strict=True))
            await connection.execute(
                """UPDATE webhook_endpoints w SET secret = r.secret, previous_secret = r.previous
                     FROM unnest($1::uuid[], $2::text[], $3::text[]) AS r(id, secret, previous)
                    WHERE w.id = r.id""",
                ids,
                secrets,
                previous,
            )
    return len(changed)


_sealed = ("secret", "previous_secret")


def _resealed(box: SecretBox, stored: str | None, endpoint_id: uuid.UUID) -> str | None:
    if stored is None:
        return None
    bound_to = endpoint_id.bytes
    return box.seal(box.open(stored, bound_to=bound_to), bound_to=bound_to)
