"""Concurrent inserts are grouped: 500 rows written at once cost a handful of statements
(counted by Postgres itself), every waiter learns its row is committed, a failing batch fails
only its own waiters, and conflicts are ignored where the statement says so."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from gateway.db.batch import BatchStatement, BatchWriter
from gateway.db.money import hold_insert


def _hold(index: int) -> tuple[object, ...]:
    return (uuid.uuid4(), "EU", 1, "EUR", 100 + index, 0, f"ref-{index}")


async def _commits(pool: asyncpg.Pool) -> int:
    value = await pool.fetchval(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
    )
    return int(value)


async def test_concurrent_rows_share_statements(pool: asyncpg.Pool) -> None:
    writer = BatchWriter(pool)
    await pool.execute("SELECT pg_stat_clear_snapshot()")
    before = await _commits(pool)
    rows = [_hold(index) for index in range(500)]
    await asyncio.gather(*(writer.write(hold_insert, row) for row in rows))
    await asyncio.sleep(0.6)  # Statistics reach pg_stat_database asynchronously.
    await pool.execute("SELECT pg_stat_clear_snapshot()")
    commits = await _commits(pool) - before
    assert await pool.fetchval("SELECT count(*) FROM holds") == 500
    # One insert for all rows, plus the statistics queries of this test itself.
    assert commits <= 5, commits
    stored = await pool.fetch("SELECT reference, amount_minor FROM holds ORDER BY amount_minor")
    assert [(r["reference"], r["amount_minor"]) for r in stored][:2] == [
        ("ref-0", 100),
        ("ref-1", 101),
    ]


async def test_a_failing_batch_fails_its_waiters_only(pool: asyncpg.Pool) -> None:
    writer = BatchWriter(pool)
    broken = BatchStatement(
        table="holds", columns=hold_insert.columns, types=hold_insert.types
    )  # No ON CONFLICT: duplicates fail.
    duplicate = _hold(1)
    await writer.write(hold_insert, duplicate)
    results = await asyncio.gather(
        writer.write(broken, duplicate),
        writer.write(hold_insert, _hold(2)),
        return_exceptions=True,
    )
    assert isinstance(results[0], asyncpg.UniqueViolationError)
    assert results[1] is None
    assert await pool.fetchval("SELECT count(*) FROM holds") == 2


async def test_conflicts_are_ignored_when_asked(pool: asyncpg.Pool) -> None:
    writer = BatchWriter(pool)
    row = _hold(7)
    await asyncio.gather(*(writer.write(hold_insert, row) for _ in range(3)))
    assert await pool.fetchval("SELECT count(*) FROM holds") == 1


async def test_batches_are_bounded(pool: asyncpg.Pool) -> None:
    writer = BatchWriter(pool, batch_size_limit=10)
    await asyncio.gather(*(writer.write(hold_insert, _hold(i)) for i in range(35)))
    assert await pool.fetchval("SELECT count(*) FROM holds") == 35
    with pytest.raises(Exception, match="one value per column"):
        await writer.write(hold_insert, ("too", "short"))
