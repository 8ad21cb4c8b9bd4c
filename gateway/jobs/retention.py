"""Retention: the per-request rows Kovra keeps for a while, then deletes in bounded batches.

Events (`GET /v1/events`, redelivery), their webhook deliveries and attempts, and the durable
copies of idempotent answers are written for every payment, so without a limit these tables
grow with the volume of payments forever. A sweep deletes what is older than its retention,
oldest first and at most `delete_batch_size_max` rows per table and statement, so it never
holds locks for long; `run_forever` (part of `kovra worker`) sweeps until nothing old is
left, then waits. Deletion is idempotent, and rows another sweeper holds are skipped, so any
number of workers can sweep at once.

Never deleted here: a delivery still pending (or its event), and the records of money and
decisions (transfers, batches, cases, the audit trail).
"""

from __future__ import annotations

import asyncio
import datetime

import asyncpg
import msgspec
import structlog

from ledger.invariants import ensure

delete_batch_size_max = 5_000
sweep_interval_seconds_default = 60.0
event_retention_days_default = 30
event_retention_days_max = 3_650
idempotency_retention_days_default = 7
idempotency_retention_days_max = 365
log = structlog.get_logger("kovra.retention")

# Finished deliveries and their attempts go in one statement: Postgres checks the attempts'
# foreign key at the end of the statement, when both are gone.
_delete_deliveries = """
    WITH doomed AS (
        SELECT id FROM webhook_deliveries
         WHERE status <> 'pending' AND created_at < $1
         ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED
    ), attempts AS (
        DELETE FROM webhook_attempts a USING doomed d WHERE a.delivery_id = d.id
    )
    DELETE FROM webhook_deliveries w USING doomed d WHERE w.id = d.id"""
# An event goes once it has no delivery left: a pending one keeps it.
_delete_events = """
    WITH doomed AS (
        SELECT e.id FROM events e
         WHERE e.created_at < $1
           AND NOT EXISTS (SELECT 1 FROM webhook_deliveries w WHERE w.event_id = e.id)
         ORDER BY e.created_at LIMIT $2 FOR UPDATE SKIP LOCKED
    )
    DELETE FROM events e USING doomed d WHERE e.id = d.id"""
_delete_idempotency_records = """
    WITH doomed AS (
        SELECT tenant_id, idempotency_key FROM idempotency_records
         WHERE created_at < $1
         ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED
    )
    DELETE FROM idempotency_records r USING doomed d
     WHERE r.tenant_id = d.tenant_id AND r.idempotency_key = d.idempotency_key"""


class Retention(msgspec.Struct, frozen=True, kw_only=True):
    """How long each kind of row is kept."""

    event_days: int = event_retention_days_default
    idempotency_days: int = idempotency_retention_days_default

    def __post_init__(self) -> None:
        ensure(1 <= self.event_days <= event_retention_days_max, "event retention is bounded")
        ensure(
            1 <= self.idempotency_days <= idempotency_retention_days_max,
            "idempotency retention is bounded",
        )


class Swept(msgspec.Struct, frozen=True, kw_only=True):
    """Rows one sweep deleted, per table (attempts go with their deliveries)."""

    deliveries: int
    events: int
    idempotency_records: int

    @property
    def total(self) -> int:
        return self.deliveries + self.events + self.idempotency_records


async def sweep(
    pool: asyncpg.Pool,
    retention: Retention,
    *,
    now: datetime.datetime | None = None,
    batch_size: int = delete_batch_size_max,
) -> Swept:
    """Delete at most `batch_size` of the oldest expired rows of each table, once."""
    ensure(1 <= batch_size <= delete_batch_size_max, "a sweep's batch is bounded")
    moment = now or datetime.datetime.now(tz=datetime.UTC)
    event_cutoff = moment - datetime.timedelta(days=retention.event_days)
    idempotency_cutoff = moment - datetime.timedelta(days=retention.idempotency_days)
    # Deliveries before events, so events whose last deliveries go now can go in this sweep.
    deliveries = await _delete(pool, _delete_deliveries, event_cutoff, batch_size)
    events = await _delete(pool, _delete_events, event_cutoff, batch_size)
    records = await _delete(pool, _delete_idempotency_records, idempotency_cutoff, batch_size)
    swept = Swept(deliveries=deliveries, events=events, idempotency_records=records)
    # Imported here: `gateway.settings` imports this module, and the metrics must not load
    # before `kovra serve` has chosen their multiprocess storage.
    from gateway.infra.observability import retention_deleted_total  # noqa: PLC0415

    for table, count in msgspec.structs.asdict(swept).items():
        retention_deleted_total.labels(table=table).inc(count)
    return swept


async def _delete(
    pool: asyncpg.Pool, statement: str, cutoff: datetime.datetime, batch_size: int
) -> int:
    status: str = await pool.execute(statement, cutoff, batch_size)
    verb, _, count = status.partition(" ")
    ensure(verb == "DELETE" and count.isdigit(), f"a retention delete answered {status!r}")
    return int(count)


async def run_forever(
    pool: asyncpg.Pool,
    retention: Retention,
    *,
    interval_seconds: float = sweep_interval_seconds_default,
) -> None:
    """Sweep until cancelled: back to back while a sweep fills a batch, else every
    `interval_seconds`."""
    while True:
        try:
            swept = await sweep(pool, retention)
        except Exception:
            log.exception("retention_sweep_failed")
            swept = None
        if swept is not None and swept.total:
            log.info("retention_swept", **msgspec.structs.asdict(swept))
        # A full batch means more old rows are waiting: go on at once (yielding the loop).
        full = swept is not None and max(msgspec.structs.astuple(swept)) >= delete_batch_size_max
        await asyncio.sleep(0 if full else interval_seconds)
