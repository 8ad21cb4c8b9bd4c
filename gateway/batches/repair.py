"""Repair of batches whose ledger writes were never recorded in Postgres.

`gateway.batches.service` writes the ledger first (the pairs' conversion chains, then the
items' holds) and Postgres second, in one transaction. A process that dies in between
leaves the tenant's money in its clearing account with no batch to spend it. This repair
finds such batches from TigerBeetle alone: every pair chain starts with a BATCH_SOURCE
transfer whose user_data_128 is the batch id. Once such a transfer is older than
`KOVRA_RECONCILE_AFTER_SECONDS` and its batch has no row, the repair

1. inserts an 'abandoned' tombstone row for the batch id. The request's own insert is
   conditional on the same primary key, so exactly one of the two wins: either the batch
   was recorded (and is left alone) or it never will be (a late request answers
   `batch_abandoned`);
2. voids every item hold the ledger has for the batch (item ids derive from the batch id
   and the item's index, so they are found by lookup, without any metadata);
3. reverses each posted leg of the pair chains, which puts the wallet's money back and
   returns the target amounts to the platform's liquidity;
4. gives the items' count against the daily limit back, from the batch's count marker
   (`DailyLimits.give_back_marked_batch`).

Every step uses deterministic transfer ids, so a repair interrupted at any point is simply
run again by the next pass (the watermark only moves once a scan is fully repaired).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import asyncpg
import structlog
import tigerbeetle as tb

from compliance.limits import DailyLimits
from gateway.batches.service import item_id
from gateway.batches.wire import batch_items_max
from gateway.infra.database.watermarks import advance_watermark, read_watermark
from ledger.clients import LedgerClient, batch_size_max
from ledger.invariants import ensure
from ledger.netting import Netting
from ledger.service import Ledger
from ledger.transfers import Leg, TransferCode, transfer_id, transfers_query

watermark_name = "batch_chains"
pair_leg_codes = (
    int(TransferCode.BATCH_SOURCE),
    int(TransferCode.BATCH_FEE),
    int(TransferCode.BATCH_TARGET),
)
# A batch of N pairs has at most three legs per pair; pairs are bounded by currencies².
pair_legs_max = 3 * 64
log = structlog.get_logger("kovra.batches.repair")


@dataclass(frozen=True, kw_only=True)
class BatchRepair:
    """What repairing batches left between the ledger and Postgres needs, and nothing else."""

    pool: asyncpg.Pool
    ledger: Ledger
    ledger_client: LedgerClient
    limits: DailyLimits
    reconcile_after_seconds: int


async def repair_once(repair: BatchRepair) -> int:
    """One scan of the pair chains written since the last one; how many batches it undid."""
    watermark = await read_watermark(repair.pool, watermark_name)
    cutoff_ns = time.time_ns() - repair.reconcile_after_seconds * 1_000_000_000
    found = await repair.ledger_client.query_transfers(
        transfers_query(
            code=int(TransferCode.BATCH_SOURCE),
            after_ns=watermark,
            before_ns=cutoff_ns,
            limit=batch_size_max,
        )
    )
    if not found:
        return 0
    tenants = {t.user_data_128: t.user_data_64 for t in found}
    rows = await repair.pool.fetch(
        "SELECT id, status FROM batches WHERE id = ANY($1::uuid[])",
        [uuid.UUID(int=b) for b in tenants],
    )
    statuses = {row["id"].int: row["status"] for row in rows}
    orphans = [b for b in tenants if statuses.get(b, "abandoned") == "abandoned"]
    undone = 0
    for batch_id in orphans:
        undone += await undo_batch(repair, batch_id=batch_id, tenant_id=tenants[batch_id])
    await advance_watermark(repair.pool, watermark_name, max(t.timestamp for t in found))
    if undone:
        log.warning("orphan_batches_undone", count=undone)
    return undone


async def undo_batch(repair: BatchRepair, *, batch_id: int, tenant_id: int) -> int:
    """Tombstone the batch, void its items' holds, reverse its pair chains; 1 if undone,
    0 if the batch turned out to be recorded."""
    region = await repair.pool.fetchval(
        "SELECT compliance_region FROM tenants WHERE id = $1", tenant_id
    )
    ensure(region is not None, "a batch's chain names a tenant that exists")
    batch_uuid = uuid.UUID(int=batch_id)
    await repair.pool.execute(
        """INSERT INTO batches (id, compliance_region, tenant_id, status, atomic, item_count,
                                accepted_count, nettings)
           VALUES ($1, $2, $3, 'abandoned', false, 0, 0, '[]') ON CONFLICT DO NOTHING""",
        batch_uuid,
        region,
        tenant_id,
    )
    status = await repair.pool.fetchval(
        "SELECT status FROM batches WHERE compliance_region = $1 AND id = $2", region, batch_uuid
    )
    if status != "abandoned":
        return 0
    netting = Netting(repair.ledger)
    voids = await _item_voids(repair, batch_id)
    for error in await netting.submit_chains([[void] for void in voids]):
        if error is not None:
            raise error
    legs = await repair.ledger_client.query_transfers(
        transfers_query(user_data_128=batch_id, limit=pair_legs_max)
    )
    reversals = [Netting.reversal(leg) for leg in legs if leg.code in pair_leg_codes]
    for error in await netting.submit_chains([[reversal] for reversal in reversals]):
        if error is not None:
            raise error
    # Last, once no money of the batch is held: its items' count against the daily limit,
    # which the marker remembers (given back once, however often the batch is undone).
    counts_given_back = await repair.limits.give_back_marked_batch(
        tenant_id=tenant_id,
        once=repair.limits.batch_marker(tenant_id=tenant_id, batch_id=batch_id),
    )
    log.warning(
        "batch_undone",
        batch_id=str(batch_uuid),
        holds_voided=len(voids),
        legs=len(reversals),
        counts_given_back=counts_given_back,
    )
    return 1


async def _item_voids(repair: BatchRepair, batch_id: int) -> list[tb.Transfer]:
    """A void for every item hold the ledger has for the batch (found by their ids)."""
    roles: dict[int, tuple[int, Leg]] = {}
    for index in range(batch_items_max):
        item = item_id(batch_id=batch_id, index=index)
        roles[transfer_id(object_id=item, leg=Leg.PAYOUT_SOURCE)] = (item, Leg.PAYOUT_SOURCE_VOID)
        roles[transfer_id(object_id=item, leg=Leg.PAYOUT_FEE)] = (item, Leg.PAYOUT_FEE_VOID)
    ids = list(roles)
    held: list[tb.Transfer] = []
    for start in range(0, len(ids), batch_size_max):
        held.extend(
            await repair.ledger_client.lookup_transfers(ids[start : start + batch_size_max])
        )
    return [
        Netting.hold_void(
            hold, void_id=transfer_id(object_id=roles[hold.id][0], leg=roles[hold.id][1])
        )
        for hold in held
    ]
