"""Transfers in Postgres: the row, its state transitions, the outbox events that go with
them (same transaction, always), and the ISO 20022 messages exchanged.

Every transition is conditional on the state it leaves, so two processes racing (a cancel
and the worker, two workers after a lease expired) can never both apply one.
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec

from gateway.http.paging import KeysetQuery, Page, PageRequest, Position, positions
from gateway.infra.database.batch import BatchStatement
from ledger.invariants import ensure

transfer_insert = BatchStatement(
    table="transfers",
    row_type="transfers_batch_row",
    columns=(
        "id",
        "compliance_region",
        "tenant_id",
        "quote_id",
        "recipient_id",
        "reference",
        "source_currency",
        "source_amount_minor",
        "fee_minor",
        "target_currency",
        "target_amount_minor",
        "rate",
        "rail",
        "status",
        "created_at",
        "updated_at",
    ),
    types=(
        "uuid",
        "text",
        "bigint",
        "uuid",
        "uuid",
        "text",
        "text",
        "bigint",
        "bigint",
        "text",
        "bigint",
        "text",
        "text",
        "text",
        "timestamptz",
        "timestamptz",
    ),
    on_conflict="ON CONFLICT DO NOTHING",
)
final_statuses = frozenset({"completed", "refunded", "cancelled", "blocked"})
active_statuses = ("processing", "submitted", "pending_rail")
# How long a worker holds the transfers it leased by default (`KOVRA_TRANSFER_LEASE_SECONDS`):
# longer than its slowest step, a rail's three tries of 5 s each and the writes around them.
claim_lease_seconds_default = 60
claim_lease_seconds_max = 3_600
# Work that is done (a cancelled transfer whose hold was voided) is parked far away.
parked_until = datetime.datetime(9999, 1, 1, tzinfo=datetime.UTC)


class TransferRow(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    compliance_region: str
    tenant_id: int
    quote_id: uuid.UUID
    recipient_id: uuid.UUID
    reference: str
    source_currency: str
    source_amount_minor: int
    fee_minor: int
    target_currency: str
    target_amount_minor: int
    rate: str
    rail: str
    status: str
    attempt: int
    next_attempt_at: datetime.datetime
    failure_code: str | None
    created_at: datetime.datetime
    updated_at: datetime.datetime
    # Set when the transfer is an item of a batch (`gateway.batches`).
    batch_id: uuid.UUID | None = None
    batch_item_index: int | None = None


_columns = ", ".join(TransferRow.__struct_fields__)


def _row(record: asyncpg.Record) -> TransferRow:
    return TransferRow(**dict(record))


async def get_transfer(
    pool: asyncpg.Pool, *, region: str, tenant_id: int, transfer_id: uuid.UUID
) -> TransferRow | None:
    record = await pool.fetchrow(
        f"SELECT {_columns} FROM transfers "  # noqa: S608 - fixed column list.
        # The reconciler's `abandoned` tombstones are not transfers a tenant ever made.
        "WHERE compliance_region = $1 AND id = $2 AND tenant_id = $3 AND status <> 'abandoned'",
        region,
        transfer_id,
        tenant_id,
    )
    return None if record is None else _row(record)


_transfer_pages = KeysetQuery(
    f"SELECT {_columns} FROM transfers "  # noqa: S608 - fixed column list.
    "WHERE tenant_id = $1 AND ($2::text IS NULL OR status = $2) AND status <> 'abandoned'",
    kind=positions,
)


async def list_transfers(
    pool: asyncpg.Pool,
    *,
    tenant_id: int,
    status: str | None,
    page: PageRequest[Position],
) -> Page[TransferRow]:
    """A page of the tenant's transfers, oldest first."""
    return await _transfer_pages.page(pool, page, tenant_id, status, row=_row)


# The statuses a lifecycle pass sends to the rail; claiming one of them makes it `submitted`
# (`claim_for_submission`).
sendable_statuses = ("processing", "submitted", "pending_rail")


async def claim_for_submission(
    pool: asyncpg.Pool, *, limit: int, lease_seconds: int
) -> list[TransferRow]:
    """Lease up to `limit` due transfers for `lease_seconds` (another claim skips them
    meanwhile, and takes them up once the lease has run out, its worker having died) and, in
    the same write, move each one the pass will send to `submitted` with its next attempt
    number. From then on the tenant can no longer cancel it: the pass may send it at any
    moment. A cancelled or blocked transfer is leased as it is (its hold is to be voided).

    One UPDATE per transfer instead of two (a lease, then `submitted`): the attempt's message
    and event are recorded before sending by `record_submissions`, which only inserts."""
    records = await pool.fetch(
        f"""UPDATE transfers
               SET next_attempt_at = now() + make_interval(secs => $2),
                   status = CASE WHEN status = ANY($3::text[]) THEN 'submitted' ELSE status END,
                   attempt = CASE WHEN status = ANY($3::text[]) THEN attempt + 1
                                  ELSE attempt END,
                   updated_at = now()
             WHERE (compliance_region, id) IN (
                   SELECT compliance_region, id FROM transfers
                    WHERE status IN ('processing', 'submitted', 'pending_rail', 'cancelled',
                                     'blocked')
                      AND next_attempt_at <= now()
                    ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING {_columns}""",  # noqa: S608 - fixed column list.
        limit,
        lease_seconds,
        list(sendable_statuses),
    )
    return [_row(record) for record in records]


class Event(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    type: str
    payload: dict[str, Any]


class Submission(msgspec.Struct, frozen=True, kw_only=True):
    """An attempt about to be sent: the transfer (as claimed), its message and its event."""

    row: TransferRow
    message: bytes
    event: Event


_record_submissions_sql = """
WITH written_events AS (
    INSERT INTO events (id, tenant_id, type, object_id, payload)
    SELECT e.id, e.tenant_id, e.type, e.object_id, e.payload
      FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::uuid[], $5::jsonb[])
           AS e(id, tenant_id, type, object_id, payload)
    ON CONFLICT DO NOTHING
)
INSERT INTO transfer_messages (compliance_region, transfer_id, tenant_id, message_type,
                               direction, attempt, xml)
SELECT m.region, m.transfer_id, m.tenant_id, 'pacs.008', 'outbound', m.attempt, m.xml
  FROM unnest($6::text[], $4::uuid[], $2::bigint[], $7::int[], $8::text[])
       AS m(region, transfer_id, tenant_id, attempt, xml)
"""


async def record_submissions(pool: asyncpg.Pool, submissions: Sequence[Submission]) -> None:
    """Each attempt's pacs.008 and `transfer.submitted` event, recorded before it is sent so
    that every message a rail may have received is on record: one statement, inserts only."""
    if not submissions:
        return
    await pool.execute(
        _record_submissions_sql,
        [s.event.id for s in submissions],
        [s.row.tenant_id for s in submissions],
        [s.event.type for s in submissions],
        [s.row.id for s in submissions],
        [_json(s.event.payload) for s in submissions],
        [s.row.compliance_region for s in submissions],
        [s.row.attempt for s in submissions],
        [s.message.decode() for s in submissions],
    )


class Move(msgspec.Struct, frozen=True, kw_only=True):
    """One transfer's step at the end of a lifecycle pass: to `to` if it is still in one of
    `expected`, with the events and inbound messages that go with it."""

    row: TransferRow
    to: str
    expected: tuple[str, ...]
    next_attempt_at: datetime.datetime
    events: tuple[Event, ...] = ()
    failure_code: str | None = None
    messages: tuple[tuple[str, str, bytes], ...] = ()  # (type, direction, xml)


# One statement for a whole pass: every conditional update, then (only for the rows that
# moved, since both inserts join `moved`) their events and messages.
_moves_sql = """
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[],
                         $6::text[])
           AS i(region, id, status, expected, next_attempt_at, failure_code)
), moved AS (
    UPDATE transfers t
       SET status = i.status, next_attempt_at = i.next_attempt_at,
           failure_code = COALESCE(i.failure_code, t.failure_code), updated_at = now()
      FROM input i
     WHERE t.compliance_region = i.region AND t.id = i.id
       AND t.status = ANY(string_to_array(i.expected, ','))
 RETURNING t.*
), written_events AS (
    INSERT INTO events (id, tenant_id, type, object_id, payload)
    SELECT e.id, moved.tenant_id, e.type, moved.id, e.payload
      FROM unnest($7::uuid[], $8::uuid[], $9::text[], $10::jsonb[])
           AS e(transfer_id, id, type, payload)
      JOIN moved ON moved.id = e.transfer_id
    ON CONFLICT DO NOTHING
), written_messages AS (
    INSERT INTO transfer_messages (compliance_region, transfer_id, tenant_id, message_type,
                                   direction, attempt, xml)
    SELECT moved.compliance_region, moved.id, moved.tenant_id, m.kind, m.direction,
           moved.attempt, m.xml
      FROM unnest($11::uuid[], $12::text[], $13::text[], $14::text[])
           AS m(transfer_id, kind, direction, xml)
      JOIN moved ON moved.id = m.transfer_id
)
"""
# A pass needs only to know which transfers moved; the cancel route answers with its row.
_transition_many_sql = _moves_sql + "SELECT id FROM moved"  # noqa: S608 - a fixed text.
_transition_sql = _moves_sql + f"SELECT {_columns} FROM moved"  # noqa: S608 - fixed columns.


async def transition_many(pool: asyncpg.Pool, moves: Sequence[Move]) -> set[uuid.UUID]:
    """Apply every move of a pass in one statement; the ids of the transfers that moved (a
    transfer another process moved first is left as it is)."""
    if not moves:
        return set()
    records = await pool.fetch(_transition_many_sql, *_move_arguments(moves))
    return {record["id"] for record in records}


async def transition(pool: asyncpg.Pool, move: Move) -> TransferRow | None:
    """Apply one move; the transfer as it is now, or None if another process moved it
    first."""
    record = await pool.fetchrow(_transition_sql, *_move_arguments([move]))
    return None if record is None else _row(record)


def _move_arguments(moves: Sequence[Move]) -> list[list[Any]]:
    ensure(len({move.row.id for move in moves}) == len(moves), "a pass moves each transfer once")
    events = [(move.row.id, event) for move in moves for event in move.events]
    messages = [(move.row.id, message) for move in moves for message in move.messages]
    return [
        [move.row.compliance_region for move in moves],
        [move.row.id for move in moves],
        [move.to for move in moves],
        [",".join(move.expected) for move in moves],
        [move.next_attempt_at for move in moves],
        [move.failure_code for move in moves],
        [transfer_id for transfer_id, _ in events],
        [event.id for _, event in events],
        [event.type for _, event in events],
        [_json(event.payload) for _, event in events],
        [transfer_id for transfer_id, _ in messages],
        [kind for _, (kind, _, _) in messages],
        [direction for _, (_, direction, _) in messages],
        [xml.decode() for _, (_, _, xml) in messages],
    ]


def _json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, default=str)


async def list_messages(
    pool: asyncpg.Pool, *, region: str, tenant_id: int, transfer_id: uuid.UUID
) -> list[asyncpg.Record]:
    return await pool.fetch(
        """SELECT message_type, direction, attempt, xml, created_at FROM transfer_messages
            WHERE compliance_region = $1 AND transfer_id = $2 AND tenant_id = $3
            ORDER BY id""",
        region,
        transfer_id,
        tenant_id,
    )


async def release(pool: asyncpg.Pool, rows: list[TransferRow], *, after_seconds: float) -> None:
    """Give back the leases of `rows`, whose step failed, so each is tried again after
    `after_seconds` rather than once its lease runs out: one statement for them all. A row is
    touched only while it is still under the lease it was claimed with (`next_attempt_at` as
    the claim set it): a step that got as far as moving the row chose its next attempt
    itself."""
    await pool.execute(
        """UPDATE transfers t SET next_attempt_at = now() + make_interval(secs => $4)
             FROM unnest($1::text[], $2::uuid[], $3::timestamptz[]) AS r(region, id, leased)
            WHERE t.compliance_region = r.region AND t.id = r.id
              AND t.next_attempt_at = r.leased""",
        [row.compliance_region for row in rows],
        [row.id for row in rows],
        [row.next_attempt_at for row in rows],
        after_seconds,
    )


async def park(pool: asyncpg.Pool, row: TransferRow, *, until: datetime.datetime) -> None:
    """Leave the state as is and come back at `until` (a rail that is down, a finished
    cancellation)."""
    await pool.execute(
        "UPDATE transfers SET next_attempt_at = $3 WHERE compliance_region = $1 AND id = $2",
        row.compliance_region,
        row.id,
        until,
    )
