"""What Postgres writes for a benchmark's transfers: pg_stat counters read before and after.

The write budget of issue 28 is counted here: rows inserted, updated (HOT or not) and deleted
in the benchmark's own database, in total (`pg_stat_database`) and per table
(`pg_stat_user_tables`), and the WAL written (`pg_stat_wal`), as deltas between two readings.
Three things make these counters harder to read than they look:

- A backend keeps its counts to itself and publishes them at most once a second while it
  works, and up to 10 s after it falls idle (PGSTAT_MIN_INTERVAL and PGSTAT_IDLE_INTERVAL in
  Postgres 15; the statistics collector of earlier versions lagged too).
  `pg_stat_force_next_flush()` only hurries the session that calls it, never the gateway's or
  the worker's connections, so `settled_counters` reads until the database's row counters
  have stood still for longer than that idle interval, within a bound. Still, not frozen:
  `kovra worker` writes a few rows a second whatever the load (its webhook deliverer's
  heartbeat, the reconciler's watermarks), so a few rows per interval count as still, far
  fewer than any work in progress publishes (a busy backend publishes every second).
- WAL is counted for the whole server, not per database. On a shared server other databases'
  work lands in it, and in the postmaster's CPU too, so the rows the other databases wrote
  meanwhile are counted as well: a reader sees when the WAL figure holds more than ours.
- `pg_stat_database` counts system catalogs and TOAST tables, which `pg_stat_user_tables`
  leaves out; the difference is reported rather than hidden.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import msgspec

from ledger.invariants import ensure, unreachable

# Postgres 15 publishes an idle backend's counts within 10 s (PGSTAT_IDLE_INTERVAL); a second
# more covers the poll that reads them.
quiet_seconds = 11.0
# Rows written within `quiet_seconds` that still count as still: the worker's housekeeping
# wrote about 40 per 11 s in the runs of issue 28, work in progress thousands.
background_rows_max = 200
settle_timeout_seconds = 60.0
poll_interval_ms = 500
connect_timeout_seconds = 10.0
# `pg_stat_wal` exists from Postgres 14 on.
wal_statistics_version_min = 140_000


class RowWrites(msgspec.Struct, frozen=True, kw_only=True):
    """Rows written to one table, or to a whole database."""

    inserted: int = 0
    # Every update, HOT ones included (Postgres counts a HOT update in both).
    updated: int = 0
    hot_updated: int = 0
    deleted: int = 0

    def minus(self, earlier: RowWrites) -> RowWrites:
        return RowWrites(
            inserted=self.inserted - earlier.inserted,
            updated=self.updated - earlier.updated,
            hot_updated=self.hot_updated - earlier.hot_updated,
            deleted=self.deleted - earlier.deleted,
        )

    def plus(self, other: RowWrites) -> RowWrites:
        return RowWrites(
            inserted=self.inserted + other.inserted,
            updated=self.updated + other.updated,
            hot_updated=self.hot_updated + other.hot_updated,
            deleted=self.deleted + other.deleted,
        )

    @property
    def is_negative(self) -> bool:
        return min(self.inserted, self.updated, self.hot_updated, self.deleted) < 0


class WalWrites(msgspec.Struct, frozen=True, kw_only=True):
    """`pg_stat_wal`: the whole server's WAL, every database together."""

    records: int
    full_page_images: int
    bytes: int

    def minus(self, earlier: WalWrites) -> WalWrites:
        return WalWrites(
            records=self.records - earlier.records,
            full_page_images=self.full_page_images - earlier.full_page_images,
            bytes=self.bytes - earlier.bytes,
        )


class WriteCounters(msgspec.Struct, frozen=True, kw_only=True):
    """One reading of the counters, each a running total since the statistics were reset."""

    # `pg_stat_database` for this database; its `hot_updated` is the tables' sum.
    database: RowWrites
    tables: dict[str, RowWrites]
    # None where the server has no `pg_stat_wal`.
    wal: WalWrites | None
    # Rows every other database has written (inserted, updated, deleted), by database oid.
    other_databases: dict[int, int]


class Writes(msgspec.Struct, frozen=True, kw_only=True):
    """What was written between two readings."""

    database: RowWrites
    tables: dict[str, RowWrites]
    wal: WalWrites | None
    # Rows the other databases wrote meanwhile, at least: a database dropped in between took
    # its counts with it.
    other_databases_rows_min: int

    @property
    def untabled(self) -> RowWrites:
        """Writes of the database outside `pg_stat_user_tables` (catalogs, TOAST)."""
        tabled = RowWrites()
        for table in self.tables.values():
            tabled = tabled.plus(table)
        return self.database.minus(tabled)


class Settled(msgspec.Struct, frozen=True, kw_only=True):
    counters: WriteCounters
    # False when the counters still moved at `settle_timeout_seconds`.
    settled: bool
    waited_seconds: float


def writes_between(before: WriteCounters, after: WriteCounters) -> Writes:
    """The writes from `before` to `after`; counters that went backwards were reset in
    between, and no delta can be read from them."""
    database = after.database.minus(before.database)
    tables = {
        name: writes.minus(before.tables.get(name, RowWrites()))
        for name, writes in after.tables.items()
    }
    if database.is_negative or any(writes.is_negative for writes in tables.values()):
        raise ValueError("the statistics were reset between the two readings")
    wal = None
    if after.wal is not None and before.wal is not None:
        wal = after.wal.minus(before.wal)
    elsewhere = sum(
        max(0, rows - before.other_databases.get(oid, 0))
        for oid, rows in after.other_databases.items()
    )
    return Writes(database=database, tables=tables, wal=wal, other_databases_rows_min=elsewhere)


def per_transfer(amount: int, completed: int) -> float | None:
    """`amount` per completed transfer; None when nothing completed."""
    ensure(completed >= 0, "a count of transfers is never negative")
    return amount / completed if completed else None


def rows_written(earlier: WriteCounters, later: WriteCounters) -> int:
    """Rows this database wrote (inserted, updated, deleted) between the two readings; the
    WAL and the other databases move on their own."""
    written = later.database.minus(earlier.database)
    return written.inserted + written.updated + written.deleted


async def read_counters(connection: asyncpg.Connection) -> WriteCounters:
    """Every counter from one statistics snapshot, so they agree with one another."""
    version = int(await connection.fetchval("SHOW server_version_num"))
    async with connection.transaction(readonly=True):
        if version >= 150_000:
            # Otherwise each view would be read from the shared counters as they stand.
            await connection.execute("SET LOCAL stats_fetch_consistency = snapshot")
        database = await connection.fetchrow(
            "SELECT tup_inserted, tup_updated, tup_deleted FROM pg_stat_database "
            "WHERE datname = current_database()"
        )
        table_rows = await connection.fetch(
            "SELECT schemaname, relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del "
            "FROM pg_stat_user_tables"
        )
        others = await connection.fetch(
            "SELECT datid, tup_inserted + tup_updated + tup_deleted AS rows FROM pg_stat_database "
            "WHERE datname IS DISTINCT FROM current_database()"
        )
        wal = None
        if version >= wal_statistics_version_min:
            wal = await connection.fetchrow("SELECT * FROM pg_stat_wal")
    if database is None:
        unreachable("pg_stat_database lists the database we are connected to")
    tables = {
        _table_name(row["schemaname"], row["relname"]): _table_writes(row) for row in table_rows
    }
    return WriteCounters(
        database=RowWrites(
            inserted=int(database["tup_inserted"]),
            updated=int(database["tup_updated"]),
            hot_updated=sum(table.hot_updated for table in tables.values()),
            deleted=int(database["tup_deleted"]),
        ),
        tables=tables,
        wal=None
        if wal is None
        else WalWrites(
            records=int(wal["wal_records"]),
            full_page_images=int(wal["wal_fpi"]),
            bytes=int(wal["wal_bytes"]),
        ),
        other_databases={int(row["datid"]): int(row["rows"]) for row in others},
    )


async def settled_counters(
    url: str,
    *,
    quiet_for_seconds: float = quiet_seconds,
    timeout_seconds: float = settle_timeout_seconds,
) -> Settled:
    """The counters once this database has written no more than `background_rows_max`
    rows over `quiet_for_seconds` (every backend has published what it wrote before), or as
    they are at `timeout_seconds`."""
    ensure(0 < quiet_for_seconds <= timeout_seconds, "the quiet period fits in the bound")
    connection = await asyncpg.connect(url, timeout=connect_timeout_seconds)
    try:
        started = time.monotonic()
        # Readings younger than `quiet_for_seconds`, and the newest older one, oldest first.
        readings = [(started, await read_counters(connection))]
        while True:
            now, latest = readings[-1]
            if now - readings[0][0] >= quiet_for_seconds:
                still = rows_written(readings[0][1], latest) <= background_rows_max
                if still or now - started >= timeout_seconds:
                    return Settled(counters=latest, settled=still, waited_seconds=now - started)
            await asyncio.sleep(poll_interval_ms / 1000)
            readings.append((time.monotonic(), await read_counters(connection)))
            while len(readings) > 1 and readings[-1][0] - readings[1][0] >= quiet_for_seconds:
                readings.pop(0)
    finally:
        await connection.close()


def _table_name(schema: str, table: str) -> str:
    return table if schema == "public" else f"{schema}.{table}"


def _table_writes(row: asyncpg.Record) -> RowWrites:
    return RowWrites(
        inserted=int(row["n_tup_ins"]),
        updated=int(row["n_tup_upd"]),
        hot_updated=int(row["n_tup_hot_upd"]),
        deleted=int(row["n_tup_del"]),
    )
