"""Batches in Postgres: a batch is recorded whole, once; the reconciler's tombstone wins
over a late request; a batch completes, with exactly one `batch.completed` event, only
when every item is terminal, however many watchers race."""

from __future__ import annotations

import asyncio
import datetime
import json
import uuid
from typing import Any

import asyncpg

from gateway.batches.records import BatchRecord, BatchRow, record_batch, transfer_columns
from gateway.batches.worker import complete_finished


def _record(batch_id: uuid.UUID, items: int, errors: int = 0) -> BatchRecord:
    now = datetime.datetime.now(tz=datetime.UTC)
    transfers = []
    events = []
    for index in range(items):
        transfer_id = uuid.uuid4()
        values: dict[str, Any] = {
            "id": transfer_id,
            "compliance_region": "EU",
            "tenant_id": 7,
            "quote_id": uuid.uuid4(),
            "recipient_id": uuid.uuid4(),
            "reference": f"INV-{index}",
            "source_currency": "EUR",
            "source_amount_minor": 100 + index,
            "fee_minor": 1,
            "target_currency": "IDR",
            "target_amount_minor": 170_000,
            "rate": "1700",
            "rail": "bi_fast",
            "status": "processing",
            "created_at": now,
            "updated_at": now,
            "batch_id": batch_id,
            "batch_item_index": index,
        }
        transfers.append(tuple(values[c] for c in transfer_columns))
        events.append((uuid.uuid4(), 7, "transfer.processing", transfer_id, json.dumps({})))
    return BatchRecord(
        batch=BatchRow(
            id=batch_id,
            compliance_region="EU",
            tenant_id=7,
            status="processing",
            atomic=False,
            item_count=items + errors,
            accepted_count=items,
            nettings=[],
            created_at=now,
            completed_at=None,
        ),
        transfers=transfers,
        events=events,
        cases=[],
        audit=[],
        errors=[
            ("EU", batch_id, 7, items + i, "unknown_recipient", "recipient_id", "no", None)
            for i in range(errors)
        ],
    )


async def _count(pool: asyncpg.Pool, sql: str, batch_id: uuid.UUID) -> int:
    return int(await pool.fetchval(sql, batch_id))


async def test_a_batch_is_recorded_whole_and_once(pool: asyncpg.Pool) -> None:
    batch_id = uuid.uuid4()
    record = _record(batch_id, items=3, errors=2)
    assert await record_batch(pool, record) == "created"
    assert await record_batch(pool, record) == "recorded"
    assert await _count(pool, "SELECT count(*) FROM transfers WHERE batch_id = $1", batch_id) == 3
    errors = "SELECT count(*) FROM batch_item_errors WHERE batch_id = $1"
    assert await _count(pool, errors, batch_id) == 2


async def test_the_tombstone_wins_over_a_late_request(pool: asyncpg.Pool) -> None:
    batch_id = uuid.uuid4()
    await pool.execute(
        """INSERT INTO batches (id, compliance_region, tenant_id, status, atomic, item_count,
                                accepted_count, nettings)
           VALUES ($1, 'EU', 7, 'abandoned', false, 0, 0, '[]')""",
        batch_id,
    )
    assert await record_batch(pool, _record(batch_id, items=2)) == "abandoned"
    assert await _count(pool, "SELECT count(*) FROM transfers WHERE batch_id = $1", batch_id) == 0


async def test_completion_waits_for_every_item_and_happens_once(pool: asyncpg.Pool) -> None:
    batch_id = uuid.uuid4()
    await record_batch(pool, _record(batch_id, items=3, errors=1))
    assert await complete_finished(pool) == 0
    await pool.execute(
        """UPDATE transfers SET status = CASE batch_item_index WHEN 0 THEN 'completed'
                                          WHEN 1 THEN 'refunded' ELSE 'rail_rejected' END
            WHERE batch_id = $1""",
        batch_id,
    )
    assert await complete_finished(pool) == 0  # rail_rejected is not terminal.
    await pool.execute(
        "UPDATE transfers SET status = 'refunded' WHERE batch_id = $1 AND batch_item_index = 2",
        batch_id,
    )
    completed = await asyncio.gather(*(complete_finished(pool) for _ in range(4)))
    assert sum(completed) == 1
    events = "SELECT count(*) FROM events WHERE object_id = $1 AND type = 'batch.completed'"
    assert await _count(pool, events, batch_id) == 1
    payload = json.loads(
        await pool.fetchval("SELECT payload FROM events WHERE object_id = $1", batch_id)
    )
    assert payload["status"] == "completed"
    assert payload["counts"] == {"completed": 1, "refunded": 2, "rejected": 1}
