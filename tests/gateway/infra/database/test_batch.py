"""Concurrent inserts are grouped: 500 rows written at once cost a handful of statements
(counted by Postgres itself), every waiter learns its row is committed, a failing batch fails
only its own waiters, conflicts are ignored where the statement says so, and rows that wait
too long for a connection are shed. Groups written
together (a row and its event) go to several tables in one statement, in one commit, all or
nothing, and the events' statement trigger (webhook fan-out) still sees every event. Every
batched insert's row type in the database has exactly its statement's columns and types."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from compliance.audit.outbox import outbox_insert
from compliance.cases.records import case_insert
from gateway.http.idempotency import idempotency_insert
from gateway.infra.database.batch import BatchStatement, BatchWriter, WriterOverloaded
from gateway.transfers.records import transfer_insert
from gateway.wallets.records import deposit_insert, hold_insert
from gateway.webhooks.records.events import event_insert
from ledger.invariants import InvariantViolation

batched_inserts = (
    idempotency_insert,
    event_insert,
    hold_insert,
    deposit_insert,
    transfer_insert,
    case_insert,
    outbox_insert,
)


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
        table="holds",
        columns=hold_insert.columns,
        types=hold_insert.types,
        row_type=hold_insert.row_type,
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
    with pytest.raises(InvariantViolation, match="one value per column"):
        await writer.write(hold_insert, ("too", "short"))


async def test_a_write_that_finds_no_connection_is_shed(pool: asyncpg.Pool) -> None:
    """Every pooled connection busy for longer than the writer's wait: the rows are shed
    with `WriterOverloaded` (nothing sent, so the request can give back what it took) rather
    than waiting without end, and the writer writes again once a connection is free."""
    writer = BatchWriter(pool, acquire_timeout_limit_seconds=0.2)
    held = [await pool.acquire() for _ in range(pool.get_max_size())]
    try:
        with pytest.raises(WriterOverloaded, match=r"no database connection within 0\.2 s"):
            await writer.write(hold_insert, _hold(1))
    finally:
        for connection in held:
            await pool.release(connection)
    await writer.write(hold_insert, _hold(2))
    assert await pool.fetchval("SELECT count(*) FROM holds") == 1


def _event(hold: tuple[object, ...]) -> tuple[object, ...]:
    return (uuid.uuid4(), 1, "hold.created", hold[0], '{"amount": 1}')


async def test_groups_go_to_several_tables_in_one_commit(pool: asyncpg.Pool) -> None:
    writer = BatchWriter(pool)
    tenant = await pool.fetchval(
        """INSERT INTO tenants (id, name, compliance_region, pricing_policy_id, limit_policy_id)
           VALUES (1, 't', 'EU', 1, 1) RETURNING id"""
    )
    await pool.execute(
        """INSERT INTO webhook_endpoints (id, tenant_id, url, enabled_events, secret)
           VALUES ($1, $2, 'http://x.test/', '{hold.*}', 'whsec_AAAA')""",
        uuid.uuid4(),
        tenant,
    )
    await pool.execute("SELECT pg_stat_clear_snapshot()")
    before = await _commits(pool)
    holds = [_hold(index) for index in range(50)]
    await asyncio.gather(
        *(
            writer.write_together([(hold_insert, hold), (event_insert, _event(hold))])
            for hold in holds
        )
    )
    await asyncio.sleep(0.6)  # Statistics reach pg_stat_database asynchronously.
    await pool.execute("SELECT pg_stat_clear_snapshot()")
    assert await _commits(pool) - before <= 4
    assert await pool.fetchval("SELECT count(*) FROM holds") == 50
    assert await pool.fetchval("SELECT count(*) FROM events") == 50
    assert await pool.fetchval("SELECT count(*) FROM webhook_deliveries") == 50


async def test_a_group_that_fails_writes_nothing_of_its_batch(pool: asyncpg.Pool) -> None:
    writer = BatchWriter(pool)
    strict_events = BatchStatement(
        table="events",
        columns=event_insert.columns,
        types=event_insert.types,
        row_type=event_insert.row_type,
    )  # No ON CONFLICT: a repeated event id fails.
    hold = _hold(1)
    event = _event(hold)
    await writer.write_together([(hold_insert, hold), (strict_events, event)])
    results = await asyncio.gather(
        writer.write_together([(hold_insert, _hold(2)), (strict_events, _event(_hold(2)))]),
        writer.write_together([(hold_insert, _hold(3)), (strict_events, event)]),
        return_exceptions=True,
    )
    assert all(isinstance(result, asyncpg.UniqueViolationError) for result in results)
    assert await pool.fetchval("SELECT count(*) FROM holds") == 1
    assert await pool.fetchval("SELECT count(*) FROM events") == 1


@pytest.mark.parametrize("statement", batched_inserts, ids=lambda statement: statement.table)
async def test_each_row_type_has_its_statements_columns_and_types(
    pool: asyncpg.Pool, statement: BatchStatement
) -> None:
    fields = await pool.fetch(
        """SELECT attribute.attname, attribute.atttypid
             FROM pg_type AS row_type
             JOIN pg_attribute AS attribute ON attribute.attrelid = row_type.typrelid
            WHERE row_type.typname = $1 AND attribute.attnum > 0 AND NOT attribute.attisdropped
            ORDER BY attribute.attnum""",
        statement.row_type,
    )
    declared = [await pool.fetchval("SELECT $1::regtype::oid", name) for name in statement.types]
    assert [field["attname"] for field in fields] == list(statement.columns)
    assert [field["atttypid"] for field in fields] == declared


@pytest.mark.parametrize("statement", batched_inserts, ids=lambda statement: statement.table)
async def test_each_table_takes_its_columns_with_their_types(
    pool: asyncpg.Pool, statement: BatchStatement
) -> None:
    """The row type is what the insert reads; the table must still have the columns it
    fills, with the same types (a cast on insert would hide a drift)."""
    columns = await pool.fetch(
        """SELECT attname, atttypid FROM pg_attribute
            WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped""",
        statement.table,
    )
    table_types = {column["attname"]: column["atttypid"] for column in columns}
    for name, type_name in zip(statement.columns, statement.types, strict=True):
        assert table_types[name] == await pool.fetchval("SELECT $1::regtype::oid", type_name)
