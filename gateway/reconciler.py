"""The reconciler: settles what a crash left between two writes.

A hold or deposit row is written before its ledger transfer. If the process died in
between, the row has no transfer: once it is older than `KOVRA_RECONCILE_AFTER_SECONDS`
(30 s by default; no request can still be writing it), the reconciler asks TigerBeetle in
one batch and marks the rows without a transfer `abandoned`. Rows whose transfer exists get
their creation event (re-)written with the same id the request would have used, so the
outbox misses nothing. A transfer reserves its funds before its row is written, so the
reconciler also voids reservations whose transfer row never came.
"""

from __future__ import annotations

import asyncio
import datetime
import time
import uuid

import msgspec
import structlog
import tigerbeetle as tb

from gateway.db.records import event_insert
from gateway.services import Services
from ledger.client import batch_size_max
from ledger.payouts import Payout, Payouts
from ledger.transfers import Leg, TransferCode, transfer_id

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
    """One pass over every money table and the payout reservations; how many it settled."""
    settled = 0
    for table in _legs:
        settled += await _reconcile_table(services, table)
    return settled + await reconcile_reservations(services)


async def reconcile_reservations(services: Services) -> int:
    """Void payout reservations the ledger holds for transfers Postgres never recorded.

    A transfer reserves its funds before its row is written; a gateway that died in between
    leaves held money no transfer will ever release. Every payout has exactly one target
    leg, so scanning pending PAYOUT_TARGET transfers finds every reservation.
    """
    watermark = await read_watermark(services, "payout_reservations")
    cutoff_ns = time.time_ns() - services.settings.reconcile_after_seconds * 1_000_000_000
    found = await services.ledger_client.query_transfers(
        tb.QueryFilter(
            user_data_128=0,
            user_data_64=0,
            user_data_32=0,
            ledger=0,
            code=int(TransferCode.PAYOUT_TARGET),
            timestamp_min=watermark + 1,
            timestamp_max=cutoff_ns,
            limit=scan_rows_max,
            flags=tb.QueryFilterFlags.NONE,
        )
    )
    reservations = [t for t in found if int(t.flags) & int(tb.TransferFlags.PENDING)]
    if not found:
        return 0
    ids = [uuid.UUID(int=t.user_data_128) for t in reservations]
    recorded = {
        row["id"]
        for row in await services.pool.fetch(
            "SELECT id FROM transfers WHERE id = ANY($1::uuid[])", ids
        )
    }
    orphans = [t for t in reservations if uuid.UUID(int=t.user_data_128) not in recorded]
    payouts = Payouts(services.ledger)
    for orphan in orphans:
        await payouts.abort(await _payout_from_ledger(services, orphan))
    await advance_watermark(services, "payout_reservations", max(t.timestamp for t in found))
    if orphans:
        log.warning("orphan_reservations_voided", count=len(orphans))
    return len(orphans)


async def _payout_from_ledger(services: Services, target_leg: tb.Transfer) -> Payout:
    """The payout's amounts, rebuilt from its pending legs in the ledger alone."""
    legs = await services.ledger_client.query_transfers(
        tb.QueryFilter(
            user_data_128=target_leg.user_data_128,
            user_data_64=0,
            user_data_32=0,
            ledger=0,
            code=0,
            timestamp_min=0,
            timestamp_max=0,
            limit=10,
            flags=tb.QueryFilterFlags.NONE,
        )
    )
    pending = {t.code: t for t in legs if int(t.flags) & int(tb.TransferFlags.PENDING)}
    source = pending.get(int(TransferCode.PAYOUT_SOURCE), target_leg)
    fee = pending.get(int(TransferCode.PAYOUT_FEE))
    currencies = services.ledger.currencies
    return Payout(
        payout_id=target_leg.user_data_128,
        tenant_id=target_leg.user_data_64,
        source_currency=currencies.by_number(source.ledger).code,
        source_amount_minor=source.amount,
        fee_minor=fee.amount if fee else 0,
        target_currency=currencies.by_number(target_leg.ledger).code,
        target_amount_minor=target_leg.amount,
    )


async def read_watermark(services: Services, name: str) -> int:
    """The ledger timestamp (ns) up to which `name` has been reconciled."""
    value = await services.pool.fetchval(
        "SELECT ledger_timestamp_ns FROM reconciler_watermarks WHERE name = $1", name
    )
    return 0 if value is None else int(value)


async def advance_watermark(services: Services, name: str, timestamp_ns: int) -> None:
    """Record that `name` has been reconciled up to `timestamp_ns` (ledger time)."""
    moment = datetime.datetime.fromtimestamp(timestamp_ns / 1_000_000_000, tz=datetime.UTC)
    await services.pool.execute(
        """INSERT INTO reconciler_watermarks (name, created_at, ledger_timestamp_ns)
           VALUES ($1, $2, $3)
           ON CONFLICT (name) DO UPDATE SET created_at = EXCLUDED.created_at,
                                            ledger_timestamp_ns = EXCLUDED.ledger_timestamp_ns""",
        name,
        moment,
        timestamp_ns,
    )


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
        services.settings.reconcile_after_seconds,
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
