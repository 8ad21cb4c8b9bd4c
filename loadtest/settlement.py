"""The transfers phase in the production shape: what it costs to complete a transfer.

In production the API accepts transfers and `kovra worker` takes them through their rail,
and both share the machine's cores with TigerBeetle, Postgres and Redis. Accepted per
second alone flatters a design whose worker falls behind, so `measure` follows one load
of `POST /v1/transfers` to its end: the transfers completed while wrk ran, the drain after
it (`loadtest.drain`), every process's CPU over the load and the drain, and Postgres's writes
over the load, the drain and the settling of its counters (`loadtest.postgres_writes`), all
divided by the transfers completed. The absolute figures are kept beside every ratio.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg
import msgspec

from loadtest import cpu, drain, postgres_writes, services_cpu
from loadtest.bench_gateway import LoadResult
from loadtest.drain import Drain, TransferCounts
from loadtest.postgres_writes import RowWrites, Writes

connect_timeout_seconds = 10.0


class Settlement(msgspec.Struct, frozen=True, kw_only=True):
    """One load of transfers followed until the worker finished with it."""

    load_seconds: float
    before: TransferCounts
    at_load_end: TransferCounts
    drain: Drain
    # Each process tree's CPU over the load and the drain, in seconds.
    cpu_seconds: dict[str, float]
    # The part of Postgres's that this database's backends spent (those alive at the drain's
    # end), where Postgres's tree also serves other databases; None if Postgres is not local.
    database_backends_cpu_seconds: float | None
    writes: Writes
    # Whether both readings of the counters settled, and how long each took.
    counters_settled: bool
    settle_seconds: tuple[float, float]

    @property
    def accepted(self) -> int:
        """Transfers Postgres holds that the load added (201s, and any whose answer wrk
        never read)."""
        return self.drain.at_end.accepted - self.before.accepted

    @property
    def completed(self) -> int:
        return self.drain.at_end.completed - self.before.completed

    @property
    def completed_during_load(self) -> int:
        return self.at_load_end.completed - self.before.completed

    def cpu_ms_per_completed(self) -> dict[str, float]:
        """Each process's CPU per completed transfer, in ms, and the stack's sum."""
        each = {name: cpu.per_request_ms(s, self.completed) for name, s in self.cpu_seconds.items()}
        return {**each, "stack": sum(each.values())}


async def measure(
    database_url: str,
    processes: Mapping[str, int],
    run_load: Callable[[], LoadResult],
) -> tuple[LoadResult, Settlement]:
    """Run the load (`run_load`, in a thread) and follow its transfers until they are final;
    `processes` names the process trees whose CPU counts."""
    before_writes = await postgres_writes.settled_counters(database_url)
    connection = await asyncpg.connect(database_url, timeout=connect_timeout_seconds)
    try:
        before = await drain.count_transfers(connection)
        backends_before = _named(await services_cpu.database_backend_pids(connection))
        cpu_before = services_cpu.cpu_seconds({**processes, **backends_before})
        result = await asyncio.to_thread(run_load)
        load_ended_at = time.monotonic()
        at_load_end = await drain.count_transfers(connection)
        drained = await drain.drain(connection, load_ended_at=load_ended_at)
        backends = _named(await services_cpu.database_backend_pids(connection))
        cpu_after = services_cpu.cpu_seconds({**processes, **backends})
    finally:
        await connection.close()
    spent = {name: cpu_after[name] - cpu_before.get(name, 0.0) for name in cpu_after}
    # Writes that finish the work after the drain (the audit outbox, webhooks' fan-out)
    # belong to these transfers too: the second reading waits for them.
    after_writes = await postgres_writes.settled_counters(database_url)
    return result, Settlement(
        load_seconds=result.seconds,
        before=before,
        at_load_end=at_load_end,
        drain=drained,
        cpu_seconds={name: spent[name] for name in processes},
        database_backends_cpu_seconds=sum(spent[name] for name in backends)
        if "postgres" in processes
        else None,
        writes=postgres_writes.writes_between(before_writes.counters, after_writes.counters),
        counters_settled=before_writes.settled and after_writes.settled,
        settle_seconds=(before_writes.waited_seconds, after_writes.waited_seconds),
    )


def _named(backends: list[int]) -> dict[str, int]:
    return {f"postgres backend {pid}": pid for pid in backends}


def accepted_per_second(result: LoadResult) -> float:
    """201s per second, or 2xx per second from a script that does not count 201s."""
    created = result.created if result.created is not None else result.requests - result.non_2xx
    return created / result.seconds


def summary(settlement: Settlement, *, echo_per_second: float) -> dict[str, Any]:
    """The figures `report` prints, for `--json`."""
    writes, completed = settlement.writes, settlement.completed
    share = drain.completed_share(settlement.before, settlement.drain)
    return {
        "accepted": settlement.accepted,
        "completed": completed,
        "completed_during_load": settlement.completed_during_load,
        "completed_per_second_during_load": settlement.completed_during_load
        / settlement.load_seconds,
        "drain_seconds": settlement.drain.seconds,
        "completed_share_within_window": share,
        "statuses": settlement.drain.at_end.since(settlement.before),
        "echo_per_second": echo_per_second,
        "cpu_seconds": settlement.cpu_seconds,
        "database_backends_cpu_seconds": settlement.database_backends_cpu_seconds,
        "cpu_ms_per_completed": settlement.cpu_ms_per_completed(),
        "writes": msgspec.to_builtins(writes),
        "rows_per_completed": _rows_per_completed(writes.database, completed),
        "wal_bytes_per_completed": None
        if writes.wal is None
        else postgres_writes.per_transfer(writes.wal.bytes, completed),
        "counters_settled": settlement.counters_settled,
        "settle_seconds": list(settlement.settle_seconds),
    }


def _rows_per_completed(rows: RowWrites, completed: int) -> dict[str, float | None]:
    return {
        "inserted": postgres_writes.per_transfer(rows.inserted, completed),
        "updated": postgres_writes.per_transfer(rows.updated, completed),
        "hot_updated": postgres_writes.per_transfer(rows.hot_updated, completed),
        "deleted": postgres_writes.per_transfer(rows.deleted, completed),
    }


def report(settlement: Settlement, *, transfers: LoadResult, echo: LoadResult) -> list[str]:
    """The round's production-shape lines, indented for `bench_transfers`."""
    accepted_rate = accepted_per_second(transfers)
    completed_rate = settlement.completed_during_load / settlement.load_seconds
    lines = [
        "  production shape: the API accepts, `kovra worker` completes",
        f"    accepted   {accepted_rate:>9,.0f} /s  p50 {transfers.p50_ms:.1f} ms  "
        f"p95 {transfers.p95_ms:.1f} ms  echo ratio {accepted_rate / echo.per_second:.2f}  "
        f"({transfers.created or 0:,} 201s in {transfers.seconds:.1f} s; "
        f"{settlement.accepted:,} new transfers in Postgres)",
        f"    completed  {completed_rate:>9,.0f} /s during the load, "
        f"{completed_rate / accepted_rate if accepted_rate else 0:.0%} of accepted/s "
        f"({settlement.completed_during_load:,}); {settlement.completed:,} by the drain's end",
        "    drain      " + _drain_text(settlement),
        "    statuses   "
        + ", ".join(
            f"{s} {n:+,}" for s, n in settlement.drain.at_end.since(settlement.before).items()
        ),
    ]
    if not settlement.completed:
        return [*lines, "    nothing completed: no cost per completed transfer to show"]
    return lines + _cpu_lines(settlement) + _write_lines(settlement)


def _drain_text(settlement: Settlement) -> str:
    drained, window = settlement.drain.seconds, drain.completed_window_seconds
    share = drain.completed_share(settlement.before, settlement.drain)
    within = settlement.drain.completed_within_window - settlement.before.completed
    return (
        (
            f"{drained:.1f} s until every accepted transfer was final"
            if drained is not None
            else f"not over after {drain.drain_timeout_seconds:.0f} s: "
            f"{settlement.drain.at_end.unfinished:,} unfinished"
        )
        + f"; completed within {window:.0f} s of the load's end: "
        + (
            "none accepted"
            if share is None
            else f"{share:.2%} ({within:,} of {settlement.accepted:,})"
        )
    )


def _cpu_lines(settlement: Settlement) -> list[str]:
    per_completed = settlement.cpu_ms_per_completed()
    seconds = {**settlement.cpu_seconds, "stack": sum(settlement.cpu_seconds.values())}
    lines = [
        "    CPU per completed transfer over the load and the drain, ms (CPU seconds in all):",
        "      "
        + ", ".join(f"{name} {per_completed[name]:.3f} ({seconds[name]:.2f})" for name in seconds),
    ]
    backends = settlement.database_backends_cpu_seconds
    if backends is not None:
        lines.append(
            f"      of postgres's, this database's backends "
            f"{cpu.per_request_ms(backends, settlement.completed):.3f} ({backends:.2f}); the "
            "rest is the WAL writer, checkpointer, autovacuum and other databases' backends"
        )
    return lines


def _write_lines(settlement: Settlement) -> list[str]:
    writes, completed = settlement.writes, settlement.completed
    rows = writes.database
    lines = [
        "    Postgres rows per completed transfer (in all): "
        f"inserted {rows.inserted / completed:.2f} ({rows.inserted:,}), "
        f"updated {rows.updated / completed:.2f} ({rows.updated:,}) "
        f"of which HOT {rows.hot_updated / completed:.2f} ({rows.hot_updated:,}), "
        f"deleted {rows.deleted / completed:.2f} ({rows.deleted:,})",
    ]
    if writes.wal is None:
        lines.append("    WAL: this server has no pg_stat_wal (Postgres 14 and later)")
    else:
        wal = writes.wal
        lines.append(
            f"    WAL per completed transfer: {wal.bytes / completed:,.0f} bytes, "
            f"{wal.records / completed:.2f} records, {wal.full_page_images / completed:.2f} "
            f"full-page images ({wal.bytes / 1e6:,.1f} MB, {wal.records:,} records, "
            f"{wal.full_page_images:,} images in all, the whole server's)"
        )
    lines.append(
        "    by table, per completed transfer: inserted / updated / HOT / deleted (in all)"
    )
    tables = sorted(
        writes.tables.items(),
        key=lambda item: -(item[1].inserted + item[1].updated + item[1].deleted),
    )
    for name, table in [*tables, ("(catalogs, TOAST)", writes.untabled)]:
        if table == RowWrites():
            continue
        lines.append(
            f"      {name:<28} {table.inserted / completed:6.2f} {table.updated / completed:6.2f} "
            f"{table.hot_updated / completed:6.2f} {table.deleted / completed:6.2f}  "
            f"({table.inserted:,} / {table.updated:,} / {table.hot_updated:,} / {table.deleted:,})"
        )
    before_seconds, after_seconds = settlement.settle_seconds
    lines.append(
        f"    counters read once at most {postgres_writes.background_rows_max} rows were "
        f"written in {postgres_writes.quiet_seconds:.0f} s: "
        f"{before_seconds:.1f} s before, {after_seconds:.1f} s after"
        + ("" if settlement.counters_settled else " (NOT settled: the rows above may be short)")
        + f"; other databases wrote at least {writes.other_databases_rows_min:,} rows meanwhile"
        " (their WAL is in the figure above, their backends in Postgres's CPU)"
    )
    return lines
