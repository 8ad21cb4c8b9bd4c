"""Mandates, collections, collection runs and provider notifications in Postgres (migration
0019), and the outbox events that go with them (same transaction, always).

Every state change is conditional on the state it leaves, so two processes racing (the
worker and a deactivation, two workers after a lease ran out) never both apply one.
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
from gateway.infra.sealing import sealed_prefix
from ledger.invariants import ensure

Executor = asyncpg.Pool | asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
# The most rows one statement of a pass reads or writes.
rows_per_statement_max = 1_000
# Work that is done (a submitted mandate waiting for its notification) is parked far away.
parked_until = datetime.datetime(9999, 1, 1, tzinfo=datetime.UTC)


class MandateRow(msgspec.Struct, frozen=True, kw_only=True):
    compliance_region: str
    id: uuid.UUID
    tenant_id: int
    customer_id: uuid.UUID
    provider: str
    currency: str
    reference: str
    bank_details_sealed: str
    bank_details_masked: dict[str, str]
    consent_accepted_at: datetime.datetime
    consent_ip: str
    consent_user_agent: str
    status: str
    provider_reference: str | None
    failure_code: str | None
    failure_description: str | None
    next_attempt_at: datetime.datetime
    submitted_at: datetime.datetime | None
    activated_at: datetime.datetime | None
    last_collection_at: datetime.datetime | None
    deactivated_at: datetime.datetime | None
    provider_deactivated_at: datetime.datetime | None
    created_at: datetime.datetime
    updated_at: datetime.datetime


class CollectionRow(msgspec.Struct, frozen=True, kw_only=True):
    compliance_region: str
    id: uuid.UUID
    tenant_id: int
    mandate_id: uuid.UUID
    provider: str
    currency: str
    amount_minor: int
    reference: str
    end_to_end_id: str
    collection_date: datetime.date
    sequence_type: str | None
    status: str
    provider_reference: str | None
    run_id: uuid.UUID | None
    failure_code: str | None
    failure_description: str | None
    returned_minor: int | None
    shortfall_minor: int | None
    next_attempt_at: datetime.datetime
    submitted_at: datetime.datetime | None
    created_at: datetime.datetime
    updated_at: datetime.datetime


class NotificationRow(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    provider: str
    event_id: str
    type: str
    provider_reference: str
    amount_minor: int | None
    currency: str | None
    reason_code: str | None
    synthetic: bool
    status: str
    compliance_region: str | None
    tenant_id: int | None
    object_type: str | None
    object_id: uuid.UUID | None
    received_at: datetime.datetime


mandate_columns = ", ".join(MandateRow.__struct_fields__)
collection_columns = ", ".join(CollectionRow.__struct_fields__)
notification_columns = ", ".join(NotificationRow.__struct_fields__)


def mandate_row(record: asyncpg.Record) -> MandateRow:
    values = dict(record)
    values["bank_details_masked"] = json.loads(values["bank_details_masked"])
    return MandateRow(**values)


def collection_row(record: asyncpg.Record) -> CollectionRow:
    return CollectionRow(**dict(record))


def notification_row(record: asyncpg.Record) -> NotificationRow:
    return NotificationRow(**dict(record))


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """An outbox event about one object of one tenant."""

    id: uuid.UUID
    tenant_id: int
    type: str
    object_id: uuid.UUID
    payload: dict[str, Any]


def event_id(object_id: uuid.UUID, event_type: str) -> uuid.UUID:
    """The same event of the same object always gets the same id, so a pass repeated after
    a crash writes it once."""
    digest = hashlib.blake2b(
        f"{object_id}:{event_type}".encode(), digest_size=16, person=b"kovra.event"
    ).digest()
    return uuid_from_bytes(digest)


def payload_json(payload: dict[str, Any]) -> str:
    return msgspec.json.encode(payload).decode()


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
        [payload_json(event.payload) for event in events],
    )


# --------------------------------------------------------------------------------------
# Mandates.


class NewMandate(msgspec.Struct, frozen=True, kw_only=True):
    compliance_region: str
    id: uuid.UUID
    tenant_id: int
    customer_id: uuid.UUID
    provider: str
    currency: str
    reference: str
    bank_details_sealed: str
    bank_details_masked: dict[str, str]
    consent_accepted_at: datetime.datetime
    consent_ip: str
    consent_user_agent: str


async def insert_mandate(executor: Executor, mandate: NewMandate) -> MandateRow | None:
    """The mandate as stored, or None when one with its id exists (a retried request)."""
    record = await executor.fetchrow(
        f"""INSERT INTO mandates (compliance_region, id, tenant_id, customer_id, provider,
                currency, reference, bank_details_sealed, bank_details_masked,
                consent_accepted_at, consent_ip, consent_user_agent)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12)
            ON CONFLICT DO NOTHING RETURNING {mandate_columns}""",  # noqa: S608 - fixed.
        mandate.compliance_region,
        mandate.id,
        mandate.tenant_id,
        mandate.customer_id,
        mandate.provider,
        mandate.currency,
        mandate.reference,
        mandate.bank_details_sealed,
        json.dumps(mandate.bank_details_masked),
        mandate.consent_accepted_at,
        mandate.consent_ip,
        mandate.consent_user_agent,
    )
    return None if record is None else mandate_row(record)


async def get_mandate(
    executor: Executor, *, region: str, tenant_id: int, mandate_id: uuid.UUID
) -> MandateRow | None:
    record = await executor.fetchrow(
        f"SELECT {mandate_columns} FROM mandates "  # noqa: S608 - fixed column list.
        "WHERE compliance_region = $1 AND id = $2 AND tenant_id = $3",
        region,
        mandate_id,
        tenant_id,
    )
    return None if record is None else mandate_row(record)


_mandate_pages = KeysetQuery(
    f"SELECT {mandate_columns} FROM mandates "  # noqa: S608 - fixed column list.
    "WHERE tenant_id = $1 AND ($2::uuid IS NULL OR customer_id = $2)"
    " AND ($3::text IS NULL OR status = $3)",
    kind=positions,
)


async def list_mandates(
    pool: asyncpg.Pool,
    *,
    tenant_id: int,
    customer_id: uuid.UUID | None,
    status: str | None,
    page: PageRequest[Position],
) -> Page[MandateRow]:
    """A page of the tenant's mandates, oldest first."""
    return await _mandate_pages.page(pool, page, tenant_id, customer_id, status, row=mandate_row)


async def deactivate_mandate(
    executor: Executor, *, region: str, mandate_id: uuid.UUID, from_statuses: Sequence[str]
) -> MandateRow | None:
    """Deactivate the mandate if it is in one of `from_statuses`; the row as it is now, or
    None when it was not (another process moved it first, or it was in another state)."""
    record = await executor.fetchrow(
        f"""UPDATE mandates SET status = 'deactivated', deactivated_at = now(),
                   updated_at = now()
             WHERE compliance_region = $1 AND id = $2 AND status = ANY($3::text[])
         RETURNING {mandate_columns}""",  # noqa: S608 - fixed column list.
        region,
        mandate_id,
        list(from_statuses),
    )
    return None if record is None else mandate_row(record)


async def claim_mandates(pool: asyncpg.Pool, *, limit: int, lease_seconds: int) -> list[MandateRow]:
    """Lease up to `limit` pending mandates not yet accepted by their provider for
    `lease_seconds` (another claim skips them meanwhile and takes them once the lease ran
    out, its worker having died)."""
    ensure(0 < limit <= rows_per_statement_max, "a claim is bounded")
    records = await pool.fetch(
        f"""UPDATE mandates SET next_attempt_at = now() + make_interval(secs => $2)
             WHERE (compliance_region, id) IN (
                   SELECT compliance_region, id FROM mandates
                    WHERE status = 'pending' AND provider_reference IS NULL
                      AND next_attempt_at <= now()
                    ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING {mandate_columns}""",  # noqa: S608 - fixed column list.
        limit,
        lease_seconds,
    )
    return [mandate_row(record) for record in records]


async def record_mandate_references(
    executor: Executor, rows: Sequence[MandateRow], references: Sequence[str]
) -> None:
    """Each mandate's provider reference, once its provider accepted it: it waits for the
    provider's notification from then on (parked)."""
    ensure(len(rows) == len(references), "one reference per mandate")
    if not rows:
        return
    await executor.execute(
        """UPDATE mandates m SET provider_reference = COALESCE(m.provider_reference, r.ref),
                  submitted_at = COALESCE(m.submitted_at, now()), next_attempt_at = $4,
                  updated_at = now()
             FROM unnest($1::text[], $2::uuid[], $3::text[]) AS r(region, id, ref)
            WHERE m.compliance_region = r.region AND m.id = r.id""",
        [row.compliance_region for row in rows],
        [row.id for row in rows],
        list(references),
        parked_until,
    )


async def release_mandates(
    pool: asyncpg.Pool, rows: Sequence[MandateRow], *, after_seconds: float
) -> None:
    """Give back the leases of `rows`, whose provider did not answer, for a try after
    `after_seconds`."""
    await pool.execute(
        """UPDATE mandates m SET next_attempt_at = now() + make_interval(secs => $3)
             FROM unnest($1::text[], $2::uuid[]) AS r(region, id)
            WHERE m.compliance_region = r.region AND m.id = r.id AND m.status = 'pending'""",
        [row.compliance_region for row in rows],
        [row.id for row in rows],
        after_seconds,
    )


async def deactivations_to_tell(pool: asyncpg.Pool, *, limit: int) -> list[MandateRow]:
    """Deactivated mandates whose provider knows them and was not told yet."""
    records = await pool.fetch(
        f"""SELECT {mandate_columns} FROM mandates
             WHERE status = 'deactivated' AND provider_deactivated_at IS NULL
               AND provider_reference IS NOT NULL
             ORDER BY deactivated_at LIMIT $1""",  # noqa: S608 - fixed column list.
        limit,
    )
    return [mandate_row(record) for record in records]


async def mark_deactivations_told(executor: Executor, rows: Sequence[MandateRow]) -> None:
    if not rows:
        return
    await executor.execute(
        """UPDATE mandates m SET provider_deactivated_at = now()
             FROM unnest($1::text[], $2::uuid[]) AS r(region, id)
            WHERE m.compliance_region = r.region AND m.id = r.id""",
        [row.compliance_region for row in rows],
        [row.id for row in rows],
    )


async def expire_mandates(
    executor: Executor,
    *,
    pending_before: datetime.datetime,
    unused_before: datetime.datetime,
    unused_providers: Sequence[str],
    limit: int,
) -> list[MandateRow]:
    """Expire, in one statement, mandates pending since before `pending_before` and active
    mandates of `unused_providers` neither activated nor collected from since
    `unused_before`; the rows expired."""
    records = await executor.fetch(
        f"""UPDATE mandates SET status = 'expired', updated_at = now()
             WHERE (compliance_region, id) IN (
                   SELECT compliance_region, id FROM mandates
                    WHERE (status = 'pending' AND created_at < $1)
                       OR (status = 'active' AND provider = ANY($3::text[])
                           AND COALESCE(last_collection_at, activated_at, created_at) < $2)
                    LIMIT $4 FOR UPDATE SKIP LOCKED)
         RETURNING {mandate_columns}""",  # noqa: S608 - fixed column list.
        pending_before,
        unused_before,
        list(unused_providers),
        limit,
    )
    return [mandate_row(record) for record in records]


# --------------------------------------------------------------------------------------
# Collections.


class NewCollection(msgspec.Struct, frozen=True, kw_only=True):
    compliance_region: str
    id: uuid.UUID
    tenant_id: int
    mandate_id: uuid.UUID
    provider: str
    currency: str
    amount_minor: int
    reference: str
    end_to_end_id: str
    collection_date: datetime.date


async def insert_collection(executor: Executor, collection: NewCollection) -> CollectionRow | None:
    """The collection as stored, or None when one with its id exists (a retried request)."""
    record = await executor.fetchrow(
        f"""INSERT INTO collections (compliance_region, id, tenant_id, mandate_id, provider,
                currency, amount_minor, reference, end_to_end_id, collection_date,
                next_attempt_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10::date::timestamptz)
            ON CONFLICT DO NOTHING RETURNING {collection_columns}""",  # noqa: S608 - fixed.
        collection.compliance_region,
        collection.id,
        collection.tenant_id,
        collection.mandate_id,
        collection.provider,
        collection.currency,
        collection.amount_minor,
        collection.reference,
        collection.end_to_end_id,
        collection.collection_date,
    )
    return None if record is None else collection_row(record)


async def get_collection(
    executor: Executor, *, region: str, tenant_id: int, collection_id: uuid.UUID
) -> CollectionRow | None:
    record = await executor.fetchrow(
        f"SELECT {collection_columns} FROM collections "  # noqa: S608 - fixed column list.
        "WHERE compliance_region = $1 AND id = $2 AND tenant_id = $3",
        region,
        collection_id,
        tenant_id,
    )
    return None if record is None else collection_row(record)


_collection_pages = KeysetQuery(
    f"SELECT {collection_columns} FROM collections "  # noqa: S608 - fixed column list.
    "WHERE tenant_id = $1 AND ($2::uuid IS NULL OR mandate_id = $2)"
    " AND ($3::text IS NULL OR status = $3)",
    kind=positions,
)


async def list_collections(
    pool: asyncpg.Pool,
    *,
    tenant_id: int,
    mandate_id: uuid.UUID | None,
    status: str | None,
    page: PageRequest[Position],
) -> Page[CollectionRow]:
    """A page of the tenant's collections, oldest first."""
    return await _collection_pages.page(
        pool, page, tenant_id, mandate_id, status, row=collection_row
    )


class DueCollection(msgspec.Struct, frozen=True, kw_only=True):
    """A collection leased for a run, with what the run needs of its mandate."""

    row: CollectionRow
    mandate_status: str
    mandate_provider_reference: str | None
    mandate_bank_details_sealed: str
    mandate_consent_accepted_at: datetime.datetime
    mandate_customer_id: uuid.UUID


# One collection per mandate per pass (the earliest due), so a run never carries two
# sequence types for one mandate. A collection's sequence type is fixed the first time it
# is leased: `first` while no collection of its mandate reached its provider and did not
# fail, `recurring` after; a retried run sends the same one.
_claim_collections_sql = f"""
WITH due AS (
    SELECT DISTINCT ON (c.compliance_region, c.mandate_id) c.compliance_region, c.id
      FROM collections c
     WHERE c.status = 'pending' AND c.provider_reference IS NULL
       AND c.next_attempt_at <= now()
     ORDER BY c.compliance_region, c.mandate_id, c.next_attempt_at, c.id
     LIMIT $1
), leased AS (
    UPDATE collections c
       SET next_attempt_at = now() + make_interval(secs => $2), updated_at = now(),
           sequence_type = COALESCE(c.sequence_type, CASE WHEN EXISTS (
               SELECT 1 FROM collections earlier
                WHERE earlier.compliance_region = c.compliance_region
                  AND earlier.mandate_id = c.mandate_id AND earlier.id <> c.id
                  AND earlier.provider_reference IS NOT NULL AND earlier.status <> 'failed')
               THEN 'recurring' ELSE 'first' END)
      FROM due
     WHERE c.compliance_region = due.compliance_region AND c.id = due.id
       AND c.status = 'pending' AND c.provider_reference IS NULL
 RETURNING c.*
)
SELECT {", ".join(f"leased.{column}" for column in CollectionRow.__struct_fields__)},
       m.status AS mandate_status, m.provider_reference AS mandate_provider_reference,
       m.bank_details_sealed AS mandate_bank_details_sealed,
       m.consent_accepted_at AS mandate_consent_accepted_at,
       m.customer_id AS mandate_customer_id
  FROM leased JOIN mandates m
    ON m.compliance_region = leased.compliance_region AND m.id = leased.mandate_id
"""  # noqa: S608 - fixed column lists.


async def claim_collections(
    pool: asyncpg.Pool, *, limit: int, lease_seconds: int
) -> list[DueCollection]:
    """Lease up to `limit` due collections not yet sent to their provider, each with its
    mandate's standing and details."""
    ensure(0 < limit <= rows_per_statement_max, "a claim is bounded")
    records = await pool.fetch(_claim_collections_sql, limit, lease_seconds)
    return [
        DueCollection(
            row=CollectionRow(**{f: record[f] for f in CollectionRow.__struct_fields__}),
            mandate_status=record["mandate_status"],
            mandate_provider_reference=record["mandate_provider_reference"],
            mandate_bank_details_sealed=record["mandate_bank_details_sealed"],
            mandate_consent_accepted_at=record["mandate_consent_accepted_at"],
            mandate_customer_id=record["mandate_customer_id"],
        )
        for record in records
    ]


async def record_run(
    executor: Executor,
    *,
    run_id: uuid.UUID,
    rows: Sequence[CollectionRow],
    references: Sequence[str],
    message_type: str | None,
    message_sealed: str | None,
) -> None:
    """A collection run as sent: its message (sealed, since it names the debtors), and each
    collection's provider reference (it waits for the provider's notification from then on,
    parked), and each mandate's last collection, in one transaction's two statements."""
    ensure(bool(rows) and len(rows) == len(references), "one reference per collection")
    ensure(len({(row.compliance_region, row.tenant_id) for row in rows}) == 1, "one tenant a run")
    await executor.execute(
        """WITH run AS (
               INSERT INTO collection_runs (compliance_region, id, tenant_id, provider,
                                            message_type, message)
               VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING
           ), sent AS (
               UPDATE collections c
                  SET provider_reference = COALESCE(c.provider_reference, r.ref),
                      run_id = COALESCE(c.run_id, $2), submitted_at = COALESCE(c.submitted_at,
                      now()), next_attempt_at = $9, updated_at = now()
                 FROM unnest($7::uuid[], $8::text[]) AS r(id, ref)
                WHERE c.compliance_region = $1 AND c.id = r.id
            RETURNING c.mandate_id
           )
           UPDATE mandates m SET last_collection_at = now()
            WHERE m.compliance_region = $1 AND m.id IN (SELECT mandate_id FROM sent)""",
        rows[0].compliance_region,
        run_id,
        rows[0].tenant_id,
        rows[0].provider,
        message_type,
        message_sealed,
        [row.id for row in rows],
        list(references),
        parked_until,
    )


class Sealed(msgspec.Struct, frozen=True, kw_only=True):
    """A row's sealed value (a mandate's bank details, a run's message), by the row's key."""

    compliance_region: str
    id: uuid.UUID
    sealed: str


# The tables whose sealed column `kovra secrets reseal` rewrites, and that column.
_resealed_columns = {"mandates": "bank_details_sealed", "collection_runs": "message"}
# A key before every row's (compliance_region, id): where a reseal starts.
first_key = ("", uuid.UUID(int=0))


async def sealed_to_reseal(
    connection: Executor,
    *,
    table: str,
    key_id: str,
    after: tuple[str, uuid.UUID],
    limit: int,
) -> list[Sealed]:
    """Up to `limit` rows of `table` after the key `after` whose sealed value is not under
    the key `key_id` (the key id is in the sealed text), in key order, locked until the
    transaction ends."""
    ensure(0 < limit <= rows_per_statement_max, "a reseal batch is bounded")
    column = _resealed_columns[table]
    records = await connection.fetch(
        f"""SELECT compliance_region, id, {column} AS sealed FROM {table}
             WHERE (compliance_region, id) > ($1, $2) AND {column} IS NOT NULL
               AND {column} NOT LIKE $3
             ORDER BY compliance_region, id LIMIT $4 FOR UPDATE""",  # noqa: S608 - fixed names.
        after[0],
        after[1],
        f"{sealed_prefix}{key_id}:%",
        limit,
    )
    return [Sealed(**dict(record)) for record in records]


async def store_resealed(connection: Executor, *, table: str, rows: Sequence[Sealed]) -> None:
    """Write every row's new sealed value in one statement. Only the sealed text changes,
    not what it holds, so the row's `updated_at` stays."""
    ensure(len(rows) <= rows_per_statement_max, "a reseal batch is bounded")
    if not rows:
        return
    column = _resealed_columns[table]
    await connection.execute(
        f"""UPDATE {table} t SET {column} = r.sealed
              FROM unnest($1::text[], $2::uuid[], $3::text[]) AS r(region, id, sealed)
             WHERE t.compliance_region = r.region AND t.id = r.id""",  # noqa: S608 - fixed names.
        [row.compliance_region for row in rows],
        [row.id for row in rows],
        [row.sealed for row in rows],
    )


async def release_collections(
    pool: asyncpg.Pool, rows: Sequence[CollectionRow], *, after_seconds: float
) -> None:
    """Give back the leases of `rows`, whose provider did not answer, for a try after
    `after_seconds`."""
    await pool.execute(
        """UPDATE collections c SET next_attempt_at = now() + make_interval(secs => $3)
             FROM unnest($1::text[], $2::uuid[]) AS r(region, id)
            WHERE c.compliance_region = r.region AND c.id = r.id
              AND c.provider_reference IS NULL""",
        [row.compliance_region for row in rows],
        [row.id for row in rows],
        after_seconds,
    )


async def run_messages(executor: Executor, row: CollectionRow) -> list[asyncpg.Record]:
    """The pain.008 of the collection's run, for a SEPA collection that was run."""
    if row.run_id is None:
        return []
    return await executor.fetch(
        """SELECT id, message_type, message, created_at FROM collection_runs
            WHERE compliance_region = $1 AND id = $2 AND tenant_id = $3
              AND message IS NOT NULL AND message_type = 'pain.008'""",
        row.compliance_region,
        row.run_id,
        row.tenant_id,
    )


async def fail_unsent(
    executor: Executor, rows: Sequence[CollectionRow], *, code: str, description: str
) -> set[uuid.UUID]:
    """Fail collections never sent to their provider (their mandate is no longer active);
    the ids of those failed now."""
    if not rows:
        return set()
    records = await executor.fetch(
        """UPDATE collections c SET status = 'failed', failure_code = $3,
                  failure_description = $4, next_attempt_at = $5, updated_at = now()
             FROM unnest($1::text[], $2::uuid[]) AS r(region, id)
            WHERE c.compliance_region = r.region AND c.id = r.id AND c.status = 'pending'
              AND c.provider_reference IS NULL
        RETURNING c.id""",
        [row.compliance_region for row in rows],
        [row.id for row in rows],
        code,
        description,
        parked_until,
    )
    return {record["id"] for record in records}


# --------------------------------------------------------------------------------------
# Provider notifications.


class NewNotification(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    provider: str
    event_id: str
    type: str
    provider_reference: str
    amount_minor: int | None
    currency: str | None
    reason_code: str | None
    synthetic: bool
    body: str


class ObjectRef(msgspec.Struct, frozen=True, kw_only=True):
    """The mandate or collection a provider reference names."""

    object_type: str
    compliance_region: str
    tenant_id: int
    object_id: uuid.UUID


async def find_objects(
    executor: Executor, *, provider: str, references: Sequence[str]
) -> dict[str, ObjectRef]:
    """The mandates and collections the provider's `references` name, by reference, in one
    statement (a reference names at most one object of a kind in a region)."""
    if not references:
        return {}
    records = await executor.fetch(
        """SELECT 'mandate' AS object_type, compliance_region, tenant_id, id, provider_reference
             FROM mandates WHERE provider = $1 AND provider_reference = ANY($2::text[])
           UNION ALL
           SELECT 'collection', compliance_region, tenant_id, id, provider_reference
             FROM collections WHERE provider = $1 AND provider_reference = ANY($2::text[])""",
        provider,
        list(dict.fromkeys(references)),
    )
    return {
        record["provider_reference"]: ObjectRef(
            object_type=record["object_type"],
            compliance_region=record["compliance_region"],
            tenant_id=record["tenant_id"],
            object_id=record["id"],
        )
        for record in records
    }


async def insert_notification(
    executor: Executor, notification: NewNotification, target: ObjectRef | None
) -> bool:
    """Store the notification unless one with its (provider, event id) is stored: whether
    it was stored now."""
    stored = await executor.fetchval(
        """INSERT INTO provider_notifications (id, provider, event_id, type,
               provider_reference, amount_minor, currency, reason_code, synthetic, body,
               status, compliance_region, tenant_id, object_type, object_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
           ON CONFLICT (provider, event_id) DO NOTHING RETURNING id""",
        notification.id,
        notification.provider,
        notification.event_id,
        notification.type,
        notification.provider_reference,
        notification.amount_minor,
        notification.currency,
        notification.reason_code,
        notification.synthetic,
        notification.body,
        "unmatched" if target is None else "pending",
        None if target is None else target.compliance_region,
        None if target is None else target.tenant_id,
        None if target is None else target.object_type,
        None if target is None else target.object_id,
    )
    return stored is not None


async def notifications_to_apply(
    executor: Executor, *, limit: int, ids: Sequence[uuid.UUID] | None = None
) -> list[NotificationRow]:
    """Matched notifications not applied yet, oldest first (only `ids`, when given)."""
    ensure(0 < limit <= rows_per_statement_max, "a pass reads a bounded batch")
    records = await executor.fetch(
        f"""SELECT {notification_columns} FROM provider_notifications
             WHERE status = 'pending' AND ($2::uuid[] IS NULL OR id = ANY($2::uuid[]))
             ORDER BY received_at, id LIMIT $1""",  # noqa: S608 - fixed column list.
        limit,
        None if ids is None else list(ids),
    )
    return [notification_row(record) for record in records]


async def unmatched_since(
    executor: Executor, *, since: datetime.datetime, limit: int
) -> list[NotificationRow]:
    """Unmatched notifications received since `since`, to match again: a provider may
    notify before the worker stored the reference its answer gave."""
    records = await executor.fetch(
        f"""SELECT {notification_columns} FROM provider_notifications
             WHERE status = 'unmatched' AND received_at >= $1
             ORDER BY received_at, id LIMIT $2""",  # noqa: S608 - fixed column list.
        since,
        limit,
    )
    return [notification_row(record) for record in records]


async def match_notifications(
    executor: Executor, matches: Sequence[tuple[uuid.UUID, ObjectRef]]
) -> None:
    """Give unmatched notifications the objects their references name now."""
    if not matches:
        return
    await executor.execute(
        """UPDATE provider_notifications n SET status = 'pending', compliance_region = m.region,
                  tenant_id = m.tenant_id, object_type = m.object_type, object_id = m.object_id
             FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[], $5::uuid[])
                  AS m(id, region, tenant_id, object_type, object_id)
            WHERE n.id = m.id AND n.status = 'unmatched'""",
        [notification_id for notification_id, _ in matches],
        [target.compliance_region for _, target in matches],
        [target.tenant_id for _, target in matches],
        [target.object_type for _, target in matches],
        [target.object_id for _, target in matches],
    )


async def mark_applied(executor: Executor, outcomes: Sequence[tuple[uuid.UUID, str]]) -> None:
    """Mark notifications applied, each with what applying it did."""
    if not outcomes:
        return
    await executor.execute(
        """UPDATE provider_notifications n SET status = 'applied', applied_at = now(),
                  outcome = o.outcome
             FROM unnest($1::uuid[], $2::text[]) AS o(id, outcome)
            WHERE n.id = o.id AND n.status = 'pending'""",
        [notification_id for notification_id, _ in outcomes],
        [outcome for _, outcome in outcomes],
    )


_collections_by_key = f"""
SELECT {", ".join(f"c.{column}" for column in CollectionRow.__struct_fields__)}
  FROM collections c JOIN unnest($1::text[], $2::uuid[]) AS k(region, id)
    ON c.compliance_region = k.region AND c.id = k.id
 ORDER BY c.id"""  # noqa: S608 - fixed column list.
_mandates_by_key = f"""
SELECT {", ".join(f"m.{column}" for column in MandateRow.__struct_fields__)}
  FROM mandates m JOIN unnest($1::text[], $2::uuid[]) AS k(region, id)
    ON m.compliance_region = k.region AND m.id = k.id
 ORDER BY m.id"""  # noqa: S608 - fixed column list.


async def collections_by_key(
    connection: Executor, keys: Sequence[tuple[str, uuid.UUID]], *, lock: bool
) -> dict[uuid.UUID, CollectionRow]:
    """The collections `keys` (region, id) name, by id; locked for the transaction when
    `lock` (in id order, so two lockers never deadlock)."""
    records = await connection.fetch(
        _collections_by_key + (" FOR UPDATE OF c" if lock else ""),
        [region for region, _ in keys],
        [object_id for _, object_id in keys],
    )
    return {record["id"]: collection_row(record) for record in records}


async def mandates_by_key(
    connection: Executor, keys: Sequence[tuple[str, uuid.UUID]], *, lock: bool
) -> dict[uuid.UUID, MandateRow]:
    """The mandates `keys` (region, id) name, by id; locked for the transaction when
    `lock`."""
    records = await connection.fetch(
        _mandates_by_key + (" FOR UPDATE OF m" if lock else ""),
        [region for region, _ in keys],
        [object_id for _, object_id in keys],
    )
    return {record["id"]: mandate_row(record) for record in records}


async def lock_notifications(connection: Executor, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Of `ids`, the notifications still to apply that no other transaction holds, locked
    for this one."""
    records = await connection.fetch(
        """SELECT id FROM provider_notifications
            WHERE id = ANY($1::uuid[]) AND status = 'pending'
            ORDER BY id FOR UPDATE SKIP LOCKED""",
        list(ids),
    )
    return {record["id"] for record in records}


async def write_collections(connection: Executor, rows: Sequence[CollectionRow]) -> None:
    """Write each collection's state as `rows` have it (the caller holds their locks)."""
    if not rows:
        return
    await connection.execute(
        """UPDATE collections c SET status = r.status, failure_code = r.failure_code,
                  failure_description = r.failure_description,
                  returned_minor = r.returned_minor, shortfall_minor = r.shortfall_minor,
                  updated_at = now()
             FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[],
                         $6::bigint[], $7::bigint[])
                  AS r(region, id, status, failure_code, failure_description,
                       returned_minor, shortfall_minor)
            WHERE c.compliance_region = r.region AND c.id = r.id""",
        [row.compliance_region for row in rows],
        [row.id for row in rows],
        [row.status for row in rows],
        [row.failure_code for row in rows],
        [row.failure_description for row in rows],
        [row.returned_minor for row in rows],
        [row.shortfall_minor for row in rows],
    )


async def write_mandates(connection: Executor, rows: Sequence[MandateRow]) -> None:
    """Write each mandate's state as `rows` have it (the caller holds their locks)."""
    if not rows:
        return
    await connection.execute(
        """UPDATE mandates m SET status = r.status, failure_code = r.failure_code,
                  failure_description = r.failure_description,
                  activated_at = r.activated_at, deactivated_at = r.deactivated_at,
                  updated_at = now()
             FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[],
                         $6::timestamptz[], $7::timestamptz[])
                  AS r(region, id, status, failure_code, failure_description, activated_at,
                       deactivated_at)
            WHERE m.compliance_region = r.region AND m.id = r.id""",
        [row.compliance_region for row in rows],
        [row.id for row in rows],
        [row.status for row in rows],
        [row.failure_code for row in rows],
        [row.failure_description for row in rows],
        [row.activated_at for row in rows],
        [row.deactivated_at for row in rows],
    )


async def insert_matched_notifications(
    executor: Executor, notifications: Sequence[tuple[NewNotification, ObjectRef]]
) -> None:
    """Notifications Kovra derived for objects it knows (a provider's final answer), in one
    statement; one stored before (same provider and event id) is not stored again."""
    if not notifications:
        return
    await executor.execute(
        """INSERT INTO provider_notifications (id, provider, event_id, type,
               provider_reference, amount_minor, currency, reason_code, synthetic, body,
               status, compliance_region, tenant_id, object_type, object_id)
           SELECT n.id, n.provider, n.event_id, n.type, n.ref, n.amount_minor, n.currency,
                  n.reason_code, true, n.body, 'pending', n.region, n.tenant_id,
                  n.object_type, n.object_id
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::bigint[], $7::text[], $8::text[], $9::text[], $10::text[],
                         $11::bigint[], $12::text[], $13::uuid[])
                  AS n(id, provider, event_id, type, ref, amount_minor, currency,
                       reason_code, body, region, tenant_id, object_type, object_id)
           ON CONFLICT (provider, event_id) DO NOTHING""",
        [n.id for n, _ in notifications],
        [n.provider for n, _ in notifications],
        [n.event_id for n, _ in notifications],
        [n.type for n, _ in notifications],
        [n.provider_reference for n, _ in notifications],
        [n.amount_minor for n, _ in notifications],
        [n.currency for n, _ in notifications],
        [n.reason_code for n, _ in notifications],
        [n.body for n, _ in notifications],
        [t.compliance_region for _, t in notifications],
        [t.tenant_id for _, t in notifications],
        [t.object_type for _, t in notifications],
        [t.object_id for _, t in notifications],
    )
