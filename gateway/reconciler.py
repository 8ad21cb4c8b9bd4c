"""The reconciler: settles metadata rows left mid-way by a crash between two writes.

A hold or deposit row is written before its ledger transfer. If the process died in
between, the row has no transfer: once it is older than `settle_after_seconds` (no request
can still be writing it), the reconciler asks TigerBeetle in one batch and marks the rows
without a transfer `abandoned`. Rows whose transfer exists get their creation event
(re-)written with the same id the request would have used, so the outbox misses nothing.
"""

from __future__ import annotations

import asyncio
import datetime
import uuid

import msgspec
import structlog

from gateway.db.records import event_insert
from gateway.services import Services
from ledger.client import batch_size_max
from ledger.transfers import Leg, transfer_id

settle_after_seconds = 30
scan_rows_max = batch_size_max
interval_seconds_default = 5.0
log = structlog.get_logger("kovra.reconciler")


class _Pending(msgspec.Struct, frozen=True):
    table: str
    compliance_region: str
    id: uuid.UUID
    tenant_id: int
    created_at: datetime.datetime


_legs = {"holds": (Leg.HOLD, "hold.created"), "deposits": (Leg.DEPOSIT, "deposit.posted")}


async def reconcile_once(services: Services) -> int:
    """One pass over every money table; returns how many rows it settled."""
    settled = 0
    for table in _legs:
        settled += await _reconcile_table(services, table)
    return settled


async def _reconcile_table(services: Services, table: str) -> int:
    watermark = await services.pool.fetchval(
        "SELECT created_at FROM reconciler_watermarks WHERE name = $1", table
    ) or datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    rows = await services.pool.fetch(
        f"""SELECT compliance_region, id, tenant_id, created_at FROM {table}
             WHERE created_at > $1 AND created_at < now() - make_interval(secs => $2)
               AND rejected_code IS NULL
             ORDER BY created_at LIMIT $3""",  # noqa: S608 - table names come from _legs.
        watermark,
        settle_after_seconds,
        scan_rows_max,
    )
    if not rows:
        return 0
    pending = [
        _Pending(table, r["compliance_region"], r["id"], r["tenant_id"], r["created_at"])
        for r in rows
    ]
    leg, event_type = _legs[table]
    ids = [transfer_id(object_id=p.id.int, leg=leg) for p in pending]
    found = {t.id for t in await services.ledger_client.lookup_transfers(ids)}
    abandoned = [p for p, tid in zip(pending, ids, strict=True) if tid not in found]
    if abandoned:
        await services.pool.executemany(
            f"UPDATE {table} SET rejected_code = 'abandoned' "  # noqa: S608 - fixed names.
            "WHERE compliance_region = $1 AND id = $2",
            [(p.compliance_region, p.id) for p in abandoned],
        )
    for p, tid in zip(pending, ids, strict=True):
        if tid in found:
            payload = {"id": str(p.id), "recovered": True}
            await services.writer.write(
                event_insert,
                (
                    uuid.UUID(int=tid),
                    p.tenant_id,
                    event_type,
                    p.id,
                    msgspec.json.encode(payload).decode(),
                ),
            )
    await services.pool.execute(
        """INSERT INTO reconciler_watermarks (name, created_at) VALUES ($1, $2)
           ON CONFLICT (name) DO UPDATE SET created_at = EXCLUDED.created_at""",
        table,
        pending[-1].created_at,
    )
    if abandoned:
        log.warning("rows_abandoned", table=table, count=len(abandoned))
    return len(abandoned)


async def run_forever(services: Services, *, interval_seconds: float) -> None:
    """The worker loop: reconcile, sleep, repeat; a failed pass is logged and retried."""
    while True:
        try:
            await reconcile_once(services)
        except Exception:
            log.exception("reconcile_failed")
        await asyncio.sleep(interval_seconds)
