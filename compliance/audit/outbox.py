"""Audit records for decisions made on the hot path, without a chain lock per transfer.

Every transfer gets a compliance decision, and every decision must be in the audit trail.
Appending to the hash chain serialises on one advisory lock, so doing it once per transfer
would cap throughput at one chain append at a time. Instead the decision is written to
`audit_outbox` in the same batched transaction as the transfer row (so it exists exactly
when the transfer does), and `drain` moves waiting decisions into the chain in batches:
one lock, one head read and one insert per batch. A crash after the transfer commits and
before the drain leaves the decision in the outbox, where the next drain finds it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Mapping

import asyncpg

from compliance.audit import chain as audit
from gateway.infra.database.batch import BatchStatement
from ledger.invariants import ensure, unreachable

log = logging.getLogger("kovra.audit_outbox")

# Decisions moved into the chain per transaction; bounds the time the chain lock is held.
drain_batch_size_max = 1_000
idle_seconds_default = 0.5

outbox_insert = BatchStatement(
    table="audit_outbox",
    row_type="audit_outbox_batch_row",
    columns=("id", "actor", "action", "target", "details"),
    types=("uuid", "text", "text", "text", "jsonb"),
    on_conflict="ON CONFLICT DO NOTHING",
)
# The same insert for one row, inside a caller's own transaction (not the batched writer).
outbox_insert_one = """
    INSERT INTO audit_outbox (id, actor, action, target, details)
    VALUES ($1, $2, $3, $4, $5::jsonb) ON CONFLICT DO NOTHING"""

_select_waiting = """
    SELECT id, actor, action, target, details::text AS details, decided_at
      FROM audit_outbox ORDER BY decided_at, id LIMIT $1"""


def outbox_row(
    *, record_id: uuid.UUID, actor: str, action: str, target: str, details: Mapping[str, object]
) -> tuple[uuid.UUID, str, str, str, str]:
    """A row for `outbox_insert`, checked now by the same rules `audit.append` applies, so
    a decision that was accepted can always be moved into the chain later."""
    _, encoded = audit.normalise_details(details)
    return outbox_row_normalised(
        record_id=record_id,
        actor=actor,
        action=action,
        target=target,
        details_json=encoded.decode("utf-8"),
    )


def outbox_row_normalised(
    *, record_id: uuid.UUID, actor: str, action: str, target: str, details_json: str
) -> tuple[uuid.UUID, str, str, str, str]:
    """`outbox_row` for details already through `audit.normalise_details` (its canonical
    JSON, decoded), for a caller that keeps them: the fields are checked all the same."""
    audit.check_fields(actor=actor, action=action, target=target)
    return (record_id, actor, action, target, details_json)


async def drain(pool: asyncpg.Pool, *, batch_size: int = drain_batch_size_max) -> int:
    """Move up to `batch_size` waiting decisions into the chain, oldest first; return how
    many moved. Drainers in any number of processes serialise on the chain's lock, and
    each sees the rows the previous one deleted, so no decision is chained twice."""
    ensure(1 <= batch_size <= drain_batch_size_max, "drain batch size is bounded")
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", audit.audit_lock_key)
        rows = await connection.fetch(_select_waiting, batch_size)
        if not rows:
            return 0
        entries = [
            audit.Entry(
                actor=row["actor"],
                action=row["action"],
                target=row["target"],
                details={
                    **json.loads(row["details"]),
                    "decided_at": audit.rfc3339(row["decided_at"]),
                },
            )
            for row in rows
        ]
        await audit.append_locked(connection, entries)
        deleted = await connection.execute(
            "DELETE FROM audit_outbox WHERE id = ANY($1::uuid[])", [row["id"] for row in rows]
        )
        if deleted != f"DELETE {len(rows)}":
            unreachable(f"the chain lock holder deleted {deleted}, not {len(rows)} rows")
    return len(rows)


async def run_forever(pool: asyncpg.Pool, *, idle_seconds: float = idle_seconds_default) -> None:
    """Drain until cancelled; sleep only when there was nothing to move."""
    while True:
        try:
            moved = await drain(pool)
        except Exception:
            log.exception("audit_outbox_drain_failed")
            moved = 0
        if moved < drain_batch_size_max:
            await asyncio.sleep(idle_seconds)
