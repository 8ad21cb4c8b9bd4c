"""Decisions written to the audit outbox reach the hash chain exactly once, oldest first,
with when they were decided; drains in bounded batches and concurrent drainers never
duplicate or lose one; the chain still verifies; bad input is refused before it is queued."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
import pytest

from compliance.audit import chain as audit
from compliance.audit import outbox as audit_outbox
from compliance.audit.chain import AuditInputError
from compliance.audit.verify import verify
from gateway.infra.database.batch import BatchWriter
from ledger.invariants import InvariantViolation


async def queue(pool: asyncpg.Pool, count: int, *, first: int = 1) -> list[uuid.UUID]:
    """Queue `count` decisions one after another, as transfers would."""
    ids = []
    for number in range(first, first + count):
        row = audit_outbox.outbox_row(
            record_id=uuid.UUID(int=number),
            actor="compliance",
            action="compliance.approve",
            target=f"transfer:{number}",
            details={"score": number % 100, "reasons": ["amount_above_tier"]},
        )
        await pool.execute(
            "INSERT INTO audit_outbox (id, actor, action, target, details) "
            "VALUES ($1, $2, $3, $4, $5::jsonb)",
            *row,
        )
        ids.append(row[0])
    return ids


async def chained_targets(pool: asyncpg.Pool) -> list[str]:
    return [
        row["target"] for row in await pool.fetch("SELECT target FROM audit_records ORDER BY seq")
    ]


async def test_a_drain_chains_waiting_decisions_in_order_with_their_time(
    pool: asyncpg.Pool,
) -> None:
    await audit.append(pool, actor="admin:ops", action="tenant.create", target="t:1", details={})
    await queue(pool, 3)
    decided = await pool.fetch("SELECT decided_at FROM audit_outbox ORDER BY decided_at, id")

    assert await audit_outbox.drain(pool) == 3
    assert await audit_outbox.drain(pool) == 0

    assert await pool.fetchval("SELECT count(*) FROM audit_outbox") == 0
    assert await chained_targets(pool) == ["t:1", "transfer:1", "transfer:2", "transfer:3"]
    first = await pool.fetchrow(
        "SELECT actor, action, details::text FROM audit_records WHERE seq = 2"
    )
    assert first is not None
    assert (first["actor"], first["action"]) == ("compliance", "compliance.approve")
    assert json.loads(first["details"]) == {
        "score": 1,
        "reasons": ["amount_above_tier"],
        "decided_at": audit.rfc3339(decided[0]["decided_at"]),
    }
    result = await verify(pool)
    assert result.ok, result
    assert result.records_checked == 4


async def test_drains_are_bounded_batches(pool: asyncpg.Pool) -> None:
    await queue(pool, 5)
    assert [await audit_outbox.drain(pool, batch_size=2) for _ in range(4)] == [2, 2, 1, 0]
    assert await chained_targets(pool) == [f"transfer:{n}" for n in range(1, 6)]
    with pytest.raises(InvariantViolation, match="bounded"):
        await audit_outbox.drain(pool, batch_size=audit_outbox.drain_batch_size_max + 1)


async def test_concurrent_drainers_chain_each_decision_exactly_once(pool: asyncpg.Pool) -> None:
    await queue(pool, 60)

    async def drainer() -> int:
        moved = 0
        while (batch := await audit_outbox.drain(pool, batch_size=7)) > 0:
            moved += batch
        return moved

    moved = await asyncio.gather(*(drainer() for _ in range(4)))
    assert sum(moved) == 60
    targets = await chained_targets(pool)
    assert sorted(targets) == sorted(f"transfer:{n}" for n in range(1, 61))
    assert len(set(targets)) == 60
    assert (await verify(pool)).ok


async def test_the_batched_writer_queues_decisions_with_other_rows(pool: asyncpg.Pool) -> None:
    writer = BatchWriter(pool)
    row = audit_outbox.outbox_row(
        record_id=uuid.UUID(int=9),
        actor="compliance",
        action="compliance.review",
        target="transfer:9",
        details={"score": 88, "reasons": ["sanctions_match:TEST:1"]},
    )
    await asyncio.gather(
        writer.write_together([(audit_outbox.outbox_insert, row)]),
        # The same decision twice (a retried request) is queued once.
        writer.write_together([(audit_outbox.outbox_insert, row)]),
    )
    await writer.drain()
    assert await audit_outbox.drain(pool) == 1
    assert await chained_targets(pool) == ["transfer:9"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("actor", ""), ("action", "x" * 65), ("target", "bad\x00target")],
)
def test_bad_decisions_are_refused_before_they_are_queued(field: str, value: str) -> None:
    fields = {"actor": "compliance", "action": "compliance.approve", "target": "transfer:1"}
    fields[field] = value
    with pytest.raises(AuditInputError, match=field):
        audit_outbox.outbox_row(record_id=uuid.UUID(int=1), details={}, **fields)


def test_details_that_are_not_json_data_are_refused() -> None:
    with pytest.raises(AuditInputError, match="not JSON data"):
        audit_outbox.outbox_row(
            record_id=uuid.UUID(int=1),
            actor="compliance",
            action="compliance.approve",
            target="transfer:1",
            details={"when": object()},
        )
