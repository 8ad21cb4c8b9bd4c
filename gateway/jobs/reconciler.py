"""The reconciler: settles what a crash left between two writes.

A hold or deposit row is written before its ledger transfer. If the process died in
between, the row has no transfer: once it is older than `KOVRA_RECONCILE_AFTER_SECONDS`
(30 s by default; no request can still be writing it), the reconciler asks TigerBeetle in
one batch and marks the rows without a transfer `abandoned`. Rows whose transfer exists get
their creation event (re-)written with the same id the request would have used, so the
outbox misses nothing. A transfer reserves its funds before its row is written, so the
reconciler also voids reservations whose transfer row never came. It first claims the
transfer's id with an `abandoned` row, so a late retry of the same transfer (same
Idempotency-Key, same id) can never record it against the voided hold, and after the void
gives back what the transfer's admission took: its daily-limit count and its quote. A
transfer admitted whose payout never reached the ledger at all gets its count and quote
back too (`gateway.transfers.orphan_admissions`).

Every `kovra worker` runs the reconciler, and its passes take turns on a Redis lease. Two
passes at once would settle nothing twice (every step is conditional on the state it
leaves), but both would read the same rows and ask the ledger about the same transfers.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import msgspec
import redis.exceptions
import structlog
import tigerbeetle as tb
from redis.asyncio import Redis

from gateway.infra.database.batch import BatchWriter
from gateway.infra.database.watermarks import advance_watermark, read_watermark
from gateway.transfers.orphan_admissions import (
    OrphanAdmissions,
    give_back_admission,
    release_orphan_admissions,
)
from gateway.transfers.records import transfer_insert
from gateway.webhooks.records.events import event_insert
from ledger.clients import LedgerClient, batch_size_max
from ledger.invariants import ensure
from ledger.payouts import Payout, Payouts
from ledger.service import Ledger
from ledger.transfers import Leg, TransferCode, transfer_id, transfers_query

scan_rows_max = batch_size_max
# A pass scans the reservations behind the delay in batches of `scan_rows_max` until it has
# caught up, at most this many times (about half a million reservations), then lets the
# rest of the worker run: at 5,000 transfers/s a five-second pass meets some 25,000.
scan_batches_per_pass_max = 64
_nil = uuid.UUID(int=0)
interval_seconds_default = 5.0
# The lease one pass holds while it runs. A pass that outlives it (a backlog of the most
# scans a pass makes) only lets a second pass start beside it: double reads, as without
# the lease, never a double settlement. A worker that dies mid-pass holds the others off
# until the lease runs out: repairs come up to two minutes later, once.
turn_lease_key = "kovra:reconciler:pass"
turn_lease_seconds = 120
# Deletes the lease only while it is still this pass's own (it may have run out and been
# taken by another pass).
_release_lease_script = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""
log = structlog.get_logger("kovra.reconciler")


@dataclass(frozen=True, kw_only=True)
class Reconciliation:
    """What the reconciler needs, and nothing else."""

    pool: asyncpg.Pool
    redis: Redis
    writer: BatchWriter
    ledger: Ledger
    ledger_client: LedgerClient
    orphans: OrphanAdmissions
    reconcile_after_seconds: int


class _Pending(msgspec.Struct, frozen=True):
    table: str
    compliance_region: str
    id: uuid.UUID
    tenant_id: int
    created_at: datetime.datetime


_legs = {"holds": (Leg.HOLD, "hold.created"), "deposits": (Leg.DEPOSIT, "deposit.posted")}


async def reconcile_once(reconciliation: Reconciliation, *, scan_rows: int = scan_rows_max) -> int:
    """One pass over every money table, the payout reservations and the admissions that
    never reached the ledger (`gateway.transfers.orphan_admissions`); how many it settled.
    The tables and reservations are scanned `scan_rows` at a time until caught up."""
    settled = 0
    for table in _legs:
        settled += await _until_caught_up(
            functools.partial(_reconcile_table, reconciliation, table), scan_rows=scan_rows
        )
    settled += await reconcile_reservations(reconciliation, scan_rows=scan_rows)
    return settled + await release_orphan_admissions(reconciliation.orphans)


async def reconcile_reservations(
    reconciliation: Reconciliation, *, scan_rows: int = scan_rows_max
) -> int:
    """Void payout reservations the ledger holds for transfers Postgres never recorded.

    A transfer reserves its funds before its row is written; a gateway that died in between
    leaves held money no transfer will ever release. Every payout has exactly one target
    leg, so scanning pending PAYOUT_TARGET transfers finds every reservation.
    """
    return await _until_caught_up(
        functools.partial(_reconcile_reservation_scan, reconciliation), scan_rows=scan_rows
    )


Scan = Callable[..., Awaitable[tuple[int, int]]]


async def _until_caught_up(scan: Scan, *, scan_rows: int) -> int:
    """Run `scan(scan_rows=...)` (how many it read, how many it settled) until one reads
    fewer than `scan_rows`, at most `scan_batches_per_pass_max` times, so the reconciler
    keeps pace with the payment rate rather than with one scan per pass; how many settled."""
    ensure(0 < scan_rows <= scan_rows_max, "a scan is one bounded query")
    settled = 0
    for _ in range(scan_batches_per_pass_max):
        scanned, done = await scan(scan_rows=scan_rows)
        settled += done
        if scanned < scan_rows:
            break
    return settled


async def _reconcile_reservation_scan(
    reconciliation: Reconciliation, *, scan_rows: int
) -> tuple[int, int]:
    """One scan past the watermark: how many transfers it read, and how many it voided."""
    watermark = await read_watermark(reconciliation.pool, "payout_reservations")
    cutoff_ns = time.time_ns() - reconciliation.reconcile_after_seconds * 1_000_000_000
    found = await reconciliation.ledger_client.query_transfers(
        tb.QueryFilter(
            user_data_128=0,
            user_data_64=0,
            user_data_32=0,
            ledger=0,
            code=int(TransferCode.PAYOUT_TARGET),
            timestamp_min=watermark + 1,
            timestamp_max=cutoff_ns,
            limit=scan_rows,
            flags=tb.QueryFilterFlags.NONE,
        )
    )
    if not found:
        return 0, 0
    reservations = [t for t in found if int(t.flags) & int(tb.TransferFlags.PENDING)]
    regions = await _tenant_regions(reconciliation, {t.user_data_64 for t in reservations})
    strangers = [t for t in reservations if t.user_data_64 not in regions]
    if strangers:
        # Not this deployment's tenants: a cluster shared with another deployment (or a
        # tenant row lost). Their money is not ours to release.
        log.error("reservations_of_unknown_tenants", count=len(strangers))
    ours = [t for t in reservations if t.user_data_64 in regions]
    recorded = await _recorded(
        reconciliation, [(regions[t.user_data_64], t.user_data_128) for t in ours]
    )
    payouts = Payouts(reconciliation.ledger)
    voided = 0
    for orphan in (t for t in ours if t.user_data_128 not in recorded):
        payout = await _payout_from_ledger(reconciliation, orphan)
        if await _abandon(reconciliation, payout, region=regions[payout.tenant_id]):
            await payouts.abort(payout)
            await _give_back_admission(reconciliation, payout)
            voided += 1
    await advance_watermark(
        reconciliation.pool, "payout_reservations", max(t.timestamp for t in found)
    )
    if voided:
        log.warning("orphan_reservations_voided", count=voided)
    return len(found), voided


async def _recorded(reconciliation: Reconciliation, keys: list[tuple[str, int]]) -> set[int]:
    """Which of these (region, transfer id) have a transfer row. A tombstone left by an
    earlier pass that died before its void is not a record.

    One primary-key probe per transfer (the LATERAL keeps the planner from hashing the whole
    table): about 10 µs each however large the table grows, where `id = ANY(...)` alone
    scanned every row of every region.
    """
    if not keys:
        return set()
    rows = await reconciliation.pool.fetch(
        """SELECT found.id FROM unnest($1::text[], $2::uuid[]) AS wanted(compliance_region, id),
           LATERAL (SELECT id FROM transfers
                     WHERE compliance_region = wanted.compliance_region AND id = wanted.id
                       AND status <> 'abandoned'
                     LIMIT 1) AS found""",
        [region for region, _ in keys],
        [uuid.UUID(int=transfer) for _, transfer in keys],
    )
    return {row["id"].int for row in rows}


async def _tenant_regions(reconciliation: Reconciliation, tenant_ids: set[int]) -> dict[int, str]:
    """The compliance region of each of the tenants this database knows, the first half of
    its transfers' primary key."""
    if not tenant_ids:
        return {}
    rows = await reconciliation.pool.fetch(
        "SELECT id, compliance_region FROM tenants WHERE id = ANY($1::bigint[])",
        sorted(tenant_ids),
    )
    return {int(row["id"]): str(row["compliance_region"]) for row in rows}


async def _abandon(reconciliation: Reconciliation, payout: Payout, *, region: str) -> bool:
    """Claim the transfer's id with an `abandoned` row; whether the id is now abandoned.

    The request's own insert of the row (a late retry with the same Idempotency-Key) is
    conditional on the same primary key, so exactly one of the two is ever written: if the
    real row came first, the reservation is the transfer's and is left alone; if the
    tombstone did, the retry's row is never written and the reservation may be voided.
    """
    now = datetime.datetime.now(tz=datetime.UTC)
    transfer = uuid.UUID(int=payout.payout_id)
    tombstone = (
        transfer,
        region,
        payout.tenant_id,
        _nil,  # The quote and the recipient are not in the ledger; the row is no transfer.
        _nil,
        "abandoned",
        payout.source_currency,
        payout.source_amount_minor,
        payout.fee_minor,
        payout.target_currency,
        payout.target_amount_minor,
        "",
        "",
        "abandoned",
        now,
        now,
    )
    # The request's own statement, so both inserts are conditional on the same key alike.
    standing = await reconciliation.pool.fetchval(
        f"""WITH claimed AS ({transfer_insert.sql(parameter=1)} RETURNING status)
            SELECT status FROM claimed
            UNION ALL
            SELECT status FROM transfers WHERE compliance_region = $2 AND id = $3
            LIMIT 1""",  # noqa: S608 - a fixed statement.
        [tombstone],
        region,
        transfer,
    )
    ensure(standing is not None, "the transfer's id holds a row after the claim")
    return bool(standing == "abandoned")


async def _give_back_admission(reconciliation: Reconciliation, payout: Payout) -> None:
    """Return what the abandoned transfer's admission took: its daily-limit count and its
    quote, with the orphan admissions' own give-back, once-only, so a request that gave
    them back already, or another pass, leaves nothing to return twice."""
    outcome = await give_back_admission(
        reconciliation.orphans, tenant_id=payout.tenant_id, transfer=payout.payout_id
    )
    if outcome == "forgotten":
        # The reconciler ran later than the admission's memory of the quote.
        log.warning("orphan_admission_kept", transfer_id=f"{payout.payout_id:032x}")


async def _payout_from_ledger(reconciliation: Reconciliation, target_leg: tb.Transfer) -> Payout:
    """The payout's amounts, rebuilt from its pending legs in the ledger alone."""
    legs = await reconciliation.ledger_client.query_transfers(
        transfers_query(user_data_128=target_leg.user_data_128, limit=10)
    )
    pending = {t.code: t for t in legs if int(t.flags) & int(tb.TransferFlags.PENDING)}
    source = pending.get(int(TransferCode.PAYOUT_SOURCE), target_leg)
    fee = pending.get(int(TransferCode.PAYOUT_FEE))
    currencies = reconciliation.ledger.currencies
    return Payout(
        payout_id=target_leg.user_data_128,
        tenant_id=target_leg.user_data_64,
        source_currency=currencies.by_number(source.ledger).code,
        source_amount_minor=source.amount,
        fee_minor=fee.amount if fee else 0,
        target_currency=currencies.by_number(target_leg.ledger).code,
        target_amount_minor=target_leg.amount,
    )


async def _reconcile_table(
    reconciliation: Reconciliation, table: str, *, scan_rows: int
) -> tuple[int, int]:
    """One scan of `table` past its watermark: how many rows it read, how many it marked."""
    watermark = await reconciliation.pool.fetchval(
        "SELECT created_at FROM reconciler_watermarks WHERE name = $1", table
    ) or datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    rows = await reconciliation.pool.fetch(
        f"""SELECT compliance_region, id, tenant_id, created_at FROM {table}
             WHERE created_at > $1 AND created_at < now() - make_interval(secs => $2)
               AND rejected_code IS NULL
             ORDER BY created_at LIMIT $3""",  # noqa: S608 - table names come from _legs.
        watermark,
        reconciliation.reconcile_after_seconds,
        scan_rows,
    )
    scanned = len(rows)
    if scanned == scan_rows:
        # The rows of one batched insert share its created_at, and the next scan starts
        # after the watermark: end this one before the last such group, so that the next
        # reads it whole instead of skipping the part of it beyond this scan. (A scan is
        # larger than any batch the writer sends; a smaller one, all of one group, is kept.)
        last = rows[-1]["created_at"]
        rows = [row for row in rows if row["created_at"] < last] or rows
    if not rows:
        return 0, 0
    pending = [
        _Pending(table, r["compliance_region"], r["id"], r["tenant_id"], r["created_at"])
        for r in rows
    ]
    leg, event_type = _legs[table]
    ids = [transfer_id(object_id=p.id.int, leg=leg) for p in pending]
    found = {t.id for t in await reconciliation.ledger_client.lookup_transfers(ids)}
    abandoned = [p for p, tid in zip(pending, ids, strict=True) if tid not in found]
    if abandoned:
        await reconciliation.pool.executemany(
            f"UPDATE {table} SET rejected_code = 'abandoned' "  # noqa: S608 - fixed names.
            "WHERE compliance_region = $1 AND id = $2",
            [(p.compliance_region, p.id) for p in abandoned],
        )
    # Submitted together, so the writer batches them into few statements.
    await asyncio.gather(
        *(
            reconciliation.writer.write(
                event_insert,
                (
                    uuid.UUID(int=tid),
                    p.tenant_id,
                    event_type,
                    p.id,
                    msgspec.json.encode({"id": str(p.id), "recovered": True}).decode(),
                ),
            )
            for p, tid in zip(pending, ids, strict=True)
            if tid in found
        )
    )
    await reconciliation.pool.execute(
        """INSERT INTO reconciler_watermarks (name, created_at) VALUES ($1, $2)
           ON CONFLICT (name) DO UPDATE SET created_at = EXCLUDED.created_at""",
        table,
        pending[-1].created_at,
    )
    if abandoned:
        log.warning("rows_abandoned", table=table, count=len(abandoned))
    return scanned, len(abandoned)


async def reconcile_in_turn(reconciliation: Reconciliation) -> int | None:
    """`reconcile_once` under the pass lease; None, without reading anything, while another
    worker's pass holds it. Without Redis the pass runs anyway: the repairs of Postgres and
    ledger must not wait for the cache (only the admissions' part needs Redis)."""
    token = uuid.uuid4().hex
    try:
        leased = await reconciliation.redis.set(
            turn_lease_key, token, nx=True, ex=turn_lease_seconds
        )
    except redis.exceptions.RedisError:
        log.warning("reconciler_lease_unavailable", exc_info=True)
        return await reconcile_once(reconciliation)
    if not leased:
        return None
    try:
        return await reconcile_once(reconciliation)
    finally:
        await reconciliation.redis.eval(_release_lease_script, 1, turn_lease_key, token)


async def run_forever(reconciliation: Reconciliation, *, interval_seconds: float) -> None:
    """The worker loop: reconcile in turn with the other workers, sleep, repeat; a failed
    pass is logged and retried."""
    while True:
        try:
            await reconcile_in_turn(reconciliation)
        except Exception:
            log.exception("reconcile_failed")
        await asyncio.sleep(interval_seconds)
