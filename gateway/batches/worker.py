"""The batch watcher: completes finished batches, builds their pain.001s, repairs orphans.

- A batch is complete when every item reached a terminal state (completed, refunded,
  cancelled, blocked; refused items were terminal from the start). Its `completed` state
  and its one `batch.completed` event are written in one transaction, conditional on the
  batch still being `processing`, with an event id derived from the batch: however many
  watchers race, the event exists exactly once.
- Each batch gets one pain.001 per rail over its accepted items, built and validated
  against the official XSD off the request path (a 10,000-item message takes seconds to
  validate), stored with the batch in the same transaction that marks it built.
- Batches whose ledger writes were never recorded are undone (`gateway.batches.repair`).
"""

from __future__ import annotations

import asyncio
import datetime
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal

import asyncpg
import msgspec
import structlog
from redis.asyncio import Redis

from gateway.batches.records import get_batch, status_counts
from gateway.batches.repair import BatchRepair, repair_once
from gateway.batches.screening import fetch_recipients
from gateway.batches.service import batch_view
from gateway.transfers.recipients import RecipientRecord
from gateway.transfers.records import final_statuses
from gateway.transfers.service import event_id
from gateway.transfers.worker import (
    payment_end_to_end_id,
    payment_uetr,
    platform_bic,
    platform_name,
)
from ledger.invariants import ensure
from ledger.service import Ledger
from rails.bank_details import validate_bank_details
from rails.corridors import Rail
from rails.iso20022 import BatchInstruction, BatchPayment, build_pain001

batches_per_pass_max = 100
messages_per_pass_max = 5
idle_seconds_default = 0.5
repair_interval_seconds = 5.0
log = structlog.get_logger("kovra.batches")


@dataclass(frozen=True, kw_only=True)
class BatchWatcher:
    """What watching batches needs, and nothing else."""

    pool: asyncpg.Pool
    redis: Redis
    ledger: Ledger
    repair: BatchRepair


async def complete_finished(pool: asyncpg.Pool) -> int:
    """Complete every open batch whose items are all terminal; how many it completed."""
    rows = await pool.fetch(
        """SELECT b.compliance_region, b.id, b.tenant_id FROM batches b
            WHERE b.status = 'processing' AND NOT EXISTS (
                  SELECT 1 FROM transfers t
                   WHERE t.compliance_region = b.compliance_region AND t.batch_id = b.id
                     AND NOT (t.status = ANY($1::text[])))
            ORDER BY b.created_at LIMIT $2""",
        sorted(final_statuses),
        batches_per_pass_max,
    )
    completed = 0
    for row in rows:
        completed += await _complete(pool, row["compliance_region"], row["id"], row["tenant_id"])
    return completed


async def _complete(pool: asyncpg.Pool, region: str, batch_id: uuid.UUID, tenant_id: int) -> int:
    async with pool.acquire() as connection, connection.transaction():
        moved = await connection.fetchval(
            """UPDATE batches SET status = 'completed', completed_at = now(), updated_at = now()
                WHERE compliance_region = $1 AND id = $2 AND status = 'processing'
            RETURNING id""",
            region,
            batch_id,
        )
        if moved is None:
            return 0  # Another watcher completed it first.
        batch = await get_batch(connection, region=region, tenant_id=tenant_id, batch_id=batch_id)
        ensure(batch is not None, "a batch just completed can be read")
        assert batch is not None
        view = batch_view(
            batch, [], next_cursor=None, counts=await status_counts(connection, batch)
        )
        await connection.execute(
            """INSERT INTO events (id, tenant_id, type, object_id, payload)
               VALUES ($1, $2, 'batch.completed', $3, $4) ON CONFLICT DO NOTHING""",
            event_id(batch_id, "batch.completed"),
            tenant_id,
            batch_id,
            msgspec.json.encode(view).decode(),
        )
    return 1


async def build_messages(watcher: BatchWatcher) -> int:
    """Build and store the pain.001s of batches that have none yet; how many batches."""
    rows = await watcher.pool.fetch(
        """SELECT compliance_region, id, tenant_id FROM batches
            WHERE messages_built_at IS NULL AND status <> 'abandoned'
            ORDER BY created_at LIMIT $1""",
        messages_per_pass_max,
    )
    for row in rows:
        await _build(watcher, row["compliance_region"], row["id"], row["tenant_id"])
    return len(rows)


async def _build(watcher: BatchWatcher, region: str, batch_id: uuid.UUID, tenant_id: int) -> None:
    items = await watcher.pool.fetch(
        """SELECT id, recipient_id, reference, target_currency, target_amount_minor, rail
             FROM transfers WHERE compliance_region = $1 AND batch_id = $2
            ORDER BY batch_item_index""",
        region,
        batch_id,
    )
    tenant_name = await watcher.pool.fetchval("SELECT name FROM tenants WHERE id = $1", tenant_id)
    recipients = await fetch_recipients(
        watcher.pool,
        watcher.redis,
        tenant_id=tenant_id,
        region=region,
        recipient_ids={row["recipient_id"].int for row in items},
    )
    by_rail: dict[str, list[asyncpg.Record]] = defaultdict(list)
    for row in items:
        by_rail[row["rail"]].append(row)
    created_at = datetime.datetime.now(tz=datetime.UTC)
    messages = []
    for rail, rows in sorted(by_rail.items()):
        currency = rows[0]["target_currency"]
        instruction = BatchInstruction(
            message_id=f"KVRB{batch_id.hex[:20]}{rail[:11]}",
            payment_information_id=f"KVRP{batch_id.hex[:20]}{rail[:11]}",
            rail=Rail(rail),
            currency=currency,
            minor_units=watcher.ledger.currencies.get(currency).minor_units,
            initiating_party_name=f"{platform_name} for {tenant_name}",
            debtor_name=platform_name,
            debtor_account=f"KOVRA-{currency}-SETTLEMENT",
            debtor_agent_bic=platform_bic,
            created_at=created_at,
            payments=[_payment(row, recipients) for row in rows],
        )
        xml = await asyncio.to_thread(build_pain001, instruction)
        total = sum(row["target_amount_minor"] for row in rows)
        messages.append((rail, currency, len(rows), Decimal(total), xml.decode()))
    async with watcher.pool.acquire() as connection, connection.transaction():
        await connection.executemany(
            """INSERT INTO batch_messages (compliance_region, batch_id, tenant_id, rail,
                                           currency, message_type, number_of_transactions,
                                           control_sum_minor, xml)
               VALUES ($1, $2, $3, $4, $5, 'pain.001', $6, $7, $8) ON CONFLICT DO NOTHING""",
            [(region, batch_id, tenant_id, *message) for message in messages],
        )
        await connection.execute(
            "UPDATE batches SET messages_built_at = now() WHERE compliance_region = $1 AND id = $2",
            region,
            batch_id,
        )


def _payment(row: asyncpg.Record, recipients: dict[int, RecipientRecord]) -> BatchPayment:
    recipient = recipients.get(row["recipient_id"].int)
    ensure(recipient is not None, "a batch item's recipient exists")
    assert recipient is not None
    details = validate_bank_details(country=recipient.country, details=recipient.bank_details)
    transfer: uuid.UUID = row["id"]
    return BatchPayment(
        # The item's own payment ids, as its pacs.008s carry them: one payment, however sent.
        end_to_end_id=payment_end_to_end_id(transfer),
        uetr=payment_uetr(transfer),
        amount_minor=row["target_amount_minor"],
        creditor_name=recipient.name,
        creditor_details=details,
        reference=row["reference"],
    )


async def run_forever(watcher: BatchWatcher, *, idle_seconds: float = idle_seconds_default) -> None:
    """Complete, build and repair until cancelled; a failed step is logged and retried."""
    next_repair = 0.0
    while True:
        worked = 0
        steps: tuple[tuple[str, Callable[[], Awaitable[int]]], ...] = (
            ("complete_finished", lambda: complete_finished(watcher.pool)),
            ("build_messages", lambda: build_messages(watcher)),
        )
        for name, step in steps:
            try:
                worked += await step()
            except Exception:
                log.exception("batch_step_failed", step=name)
        if time.monotonic() >= next_repair:
            next_repair = time.monotonic() + repair_interval_seconds
            try:
                await repair_once(watcher.repair)
            except Exception:
                log.exception("batch_repair_failed")
        if worked == 0:
            await asyncio.sleep(idle_seconds)
