"""Whether the lifecycle worker keeps up: the benchmark's transfers counted by status.

Accepting a transfer is half the work; the worker still has to take it through its rail
to `completed`. During a load the benchmark counts the transfers that completed while wrk
ran, and once the load stops it polls until every accepted transfer has reached a final
status (`drain`), bounded by `drain_timeout_seconds`: that gives the drain time and the share
completed within `completed_window_seconds` of the load's end (SPEC §9 and issue 28 ask for
99.5 % within 60 s). Counts come from Postgres, whose rows are what a tenant reads.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import msgspec

from gateway.transfers.records import final_statuses
from ledger.invariants import ensure

drain_timeout_seconds = 120.0
completed_window_seconds = 60.0
poll_interval_ms = 500
# The reconciler's tombstone of a transfer that was never made (migration 0013).
tombstone_status = "abandoned"


class TransferCounts(msgspec.Struct, frozen=True, kw_only=True):
    """How many transfers stand in each status (tombstones left out: nobody made them)."""

    by_status: dict[str, int]

    @property
    def accepted(self) -> int:
        return sum(self.by_status.values())

    @property
    def final(self) -> int:
        return sum(count for status, count in self.by_status.items() if status in final_statuses)

    @property
    def completed(self) -> int:
        return self.by_status.get("completed", 0)

    @property
    def unfinished(self) -> int:
        return self.accepted - self.final

    def since(self, earlier: TransferCounts) -> dict[str, int]:
        """How many more stand in each status than `earlier` (the ones that changed)."""
        statuses = self.by_status.keys() | earlier.by_status.keys()
        changes = {s: self.by_status.get(s, 0) - earlier.by_status.get(s, 0) for s in statuses}
        return {status: change for status, change in sorted(changes.items()) if change}


class Drain(msgspec.Struct, frozen=True, kw_only=True):
    """The transfers after the load: when the last one reached a final status, if it did."""

    # Seconds from the load's end until no transfer was unfinished; None past the timeout.
    seconds: float | None
    at_end: TransferCounts
    # Completed transfers (every one so far, not only this load's) at the last poll within
    # `completed_window_seconds` of the load's end: a poll later would count too many.
    completed_within_window: int


def completed_share(before: TransferCounts, drain: Drain) -> float | None:
    """The share of the transfers accepted since `before` that completed within the window
    after the load's end; None when none was accepted."""
    accepted = drain.at_end.accepted - before.accepted
    ensure(accepted >= 0, "transfers are never deleted while a benchmark runs")
    if not accepted:
        return None
    return (drain.completed_within_window - before.completed) / accepted


async def count_transfers(connection: asyncpg.Connection) -> TransferCounts:
    rows = await connection.fetch(
        "SELECT status, count(*) AS transfers FROM transfers WHERE status <> $1 GROUP BY status",
        tombstone_status,
    )
    return TransferCounts(by_status={row["status"]: int(row["transfers"]) for row in rows})


async def drain(
    connection: asyncpg.Connection,
    *,
    load_ended_at: float,
    timeout_seconds: float = drain_timeout_seconds,
    window_seconds: float = completed_window_seconds,
) -> Drain:
    """Poll until no transfer is unfinished, or `timeout_seconds` after `load_ended_at` (a
    `time.monotonic()` reading)."""
    ensure(0 < timeout_seconds <= drain_timeout_seconds, "the drain is bounded")
    completed_within_window: int | None = None
    while True:
        counts = await count_transfers(connection)
        elapsed = time.monotonic() - load_ended_at
        # The first poll counts even if it came late: the caller starts at the load's end.
        if elapsed <= window_seconds or completed_within_window is None:
            completed_within_window = counts.completed
        if counts.unfinished == 0 or elapsed >= timeout_seconds:
            return Drain(
                seconds=elapsed if counts.unfinished == 0 else None,
                at_end=counts,
                completed_within_window=completed_within_window,
            )
        await asyncio.sleep(poll_interval_ms / 1000)
