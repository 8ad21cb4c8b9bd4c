"""The write budget reads Postgres's counters as deltas: per table and for the database, with
what lies outside the user tables kept apart, the other databases' rows as a lower bound
(a dropped database took its counts along), a reset refused rather than read as negative
writes, and a figure per completed transfer only when some completed. Against a real server,
rows a session wrote show in the counters of its table once published, and the counters
settle where nobody writes or a trickle of housekeeping does, but not while work goes on."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
import pytest

from loadtest.postgres_writes import (
    RowWrites,
    WalWrites,
    WriteCounters,
    background_rows_max,
    per_transfer,
    read_counters,
    rows_written,
    settled_counters,
    writes_between,
)


def counters(
    *,
    tables: dict[str, RowWrites],
    catalogs: RowWrites | None = None,
    wal_bytes: int | None = 0,
    others: dict[int, int] | None = None,
) -> WriteCounters:
    """A reading whose database totals are its tables' plus `catalogs`."""
    database = catalogs or RowWrites()
    for table in tables.values():
        database = database.plus(table)
    return WriteCounters(
        database=database,
        tables=tables,
        wal=None
        if wal_bytes is None
        else WalWrites(records=wal_bytes // 100, full_page_images=0, bytes=wal_bytes),
        other_databases=others or {},
    )


def test_writes_are_the_deltas_per_table_and_in_total() -> None:
    before = counters(
        tables={"transfers": RowWrites(inserted=10, updated=20, hot_updated=5)},
        wal_bytes=1_000,
    )
    after = counters(
        tables={
            "transfers": RowWrites(inserted=13, updated=26, hot_updated=9),
            "events": RowWrites(inserted=7, deleted=2),
        },
        catalogs=RowWrites(inserted=4),
        wal_bytes=9_000,
    )

    writes = writes_between(before, after)

    assert writes.tables == {
        "transfers": RowWrites(inserted=3, updated=6, hot_updated=4),
        "events": RowWrites(inserted=7, deleted=2),
    }
    assert writes.database == RowWrites(inserted=14, updated=6, hot_updated=4, deleted=2)
    assert writes.untabled == RowWrites(inserted=4)
    assert writes.wal == WalWrites(records=80, full_page_images=0, bytes=8_000)


def test_other_databases_count_at_least_what_is_still_there_to_read() -> None:
    before = counters(tables={}, others={1: 100, 2: 500, 3: 40})
    # Database 2 was dropped, 4 was created; 1 wrote 25 more rows and 3 none.
    after = counters(tables={}, others={1: 125, 3: 40, 4: 60})

    assert writes_between(before, after).other_databases_rows_min == 85


def test_a_reset_between_the_readings_is_refused() -> None:
    before = counters(tables={"transfers": RowWrites(inserted=10)})
    after = counters(tables={"transfers": RowWrites(inserted=2)})

    with pytest.raises(ValueError, match="reset"):
        writes_between(before, after)


def test_no_wal_figure_without_both_readings_of_it() -> None:
    before = counters(tables={}, wal_bytes=None)
    after = counters(tables={}, wal_bytes=5_000)

    assert writes_between(before, after).wal is None


def test_a_figure_per_transfer_needs_a_completed_transfer() -> None:
    assert per_transfer(4_500, 1_000) == pytest.approx(4.5)
    assert per_transfer(4_500, 0) is None


def test_rows_written_leave_out_the_wal_and_other_databases() -> None:
    earlier = counters(tables={"transfers": RowWrites(inserted=3)}, wal_bytes=100, others={1: 5})
    later = counters(
        tables={"transfers": RowWrites(inserted=4, updated=2, hot_updated=2, deleted=1)},
        wal_bytes=900,
        others={1: 50},
    )

    assert rows_written(earlier, earlier) == 0
    assert rows_written(earlier, later) == 4


async def test_a_sessions_writes_show_in_its_tables_counters(empty_database: str) -> None:
    writer = await asyncpg.connect(empty_database)
    reader = await asyncpg.connect(empty_database)
    try:
        await writer.execute("CREATE TABLE ledger_rows (id int PRIMARY KEY, note text)")
        before = await read_counters(reader)
        await writer.execute("INSERT INTO ledger_rows SELECT i, 'new' FROM generate_series(1, 3) i")
        # An unindexed column changes and the page has room: both updates are HOT.
        await writer.execute("UPDATE ledger_rows SET note = 'seen' WHERE id <= 2")
        await writer.execute("DELETE FROM ledger_rows WHERE id = 3")
        # Published once this statement ends, before the server answers it.
        await writer.execute("SELECT pg_stat_force_next_flush()")
        after = await read_counters(reader)
    finally:
        await writer.close()
        await reader.close()

    writes = writes_between(before, after)
    assert writes.tables["ledger_rows"] == RowWrites(
        inserted=3, updated=2, hot_updated=2, deleted=1
    )
    assert writes.database.inserted >= 3
    assert writes.wal is not None
    assert writes.wal.bytes > 0


async def test_a_database_nobody_writes_to_settles(empty_database: str) -> None:
    settled = await settled_counters(empty_database, quiet_for_seconds=1.0, timeout_seconds=10.0)

    assert settled.settled
    assert settled.waited_seconds >= 1.0


@contextlib.asynccontextmanager
async def writing(url: str, *, rows_per_statement: int) -> AsyncIterator[None]:
    """A session inserting `rows_per_statement` rows ten times a second while the block runs."""
    connection = await asyncpg.connect(url)
    await connection.execute("CREATE TABLE IF NOT EXISTS busy (id bigserial, note text)")

    async def write() -> None:
        while True:
            await connection.execute(
                "INSERT INTO busy (note) SELECT 'x' FROM generate_series(1, $1)",
                rows_per_statement,
            )
            await asyncio.sleep(0.1)

    task = asyncio.get_running_loop().create_task(write())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await connection.close()


async def test_a_trickle_of_housekeeping_counts_as_still(empty_database: str) -> None:
    async with writing(empty_database, rows_per_statement=1):
        settled = await settled_counters(
            empty_database, quiet_for_seconds=2.0, timeout_seconds=30.0
        )

    assert settled.settled


async def test_work_in_progress_never_settles(empty_database: str) -> None:
    async with writing(empty_database, rows_per_statement=500):
        settled = await settled_counters(empty_database, quiet_for_seconds=2.0, timeout_seconds=4.0)

    assert not settled.settled
    assert settled.counters.tables["busy"].inserted > background_rows_max
