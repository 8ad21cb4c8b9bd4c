"""The drain counts transfers by status: tombstones are no transfer, every final status ends a
transfer's work and only `completed` completes it; the share completed within the window
counts only the transfers the load added; and against a real table the drain stops as soon
as nothing is unfinished, or at its bound with what is still unfinished."""

from __future__ import annotations

import time

import asyncpg
import pytest

from loadtest.drain import Drain, TransferCounts, completed_share, count_transfers, drain


def test_final_and_completed_statuses_are_told_apart() -> None:
    counts = TransferCounts(
        by_status={"completed": 5, "refunded": 1, "blocked": 1, "in_review": 2, "submitted": 3}
    )

    assert counts.accepted == 12
    assert counts.final == 7
    assert counts.completed == 5
    assert counts.unfinished == 5


def test_changes_since_an_earlier_count_leave_out_the_unchanged() -> None:
    earlier = TransferCounts(by_status={"completed": 10, "refunded": 1, "processing": 4})
    later = TransferCounts(by_status={"completed": 20, "refunded": 1})

    assert later.since(earlier) == {"completed": 10, "processing": -4}


def test_the_share_counts_only_the_transfers_the_load_added() -> None:
    before = TransferCounts(by_status={"completed": 1_000})
    drained = Drain(
        seconds=70.0,
        at_end=TransferCounts(by_status={"completed": 1_200}),
        completed_within_window=1_150,
    )

    assert completed_share(before, drained) == pytest.approx(0.75)
    assert (
        completed_share(before, Drain(seconds=0.0, at_end=before, completed_within_window=1_000))
        is None
    )


async def test_the_drain_stops_once_nothing_is_unfinished(empty_database: str) -> None:
    connection = await asyncpg.connect(empty_database)
    try:
        await connection.execute("CREATE TABLE transfers (status text NOT NULL)")
        await connection.execute(
            "INSERT INTO transfers VALUES ('completed'), ('completed'), ('refunded'), ('abandoned')"
        )
        assert (await count_transfers(connection)).by_status == {"completed": 2, "refunded": 1}

        drained = await drain(connection, load_ended_at=time.monotonic())

        assert drained.seconds is not None
        assert drained.completed_within_window == 2
    finally:
        await connection.close()


async def test_the_drain_gives_up_at_its_bound(empty_database: str) -> None:
    connection = await asyncpg.connect(empty_database)
    try:
        await connection.execute("CREATE TABLE transfers (status text NOT NULL)")
        await connection.execute("INSERT INTO transfers VALUES ('completed'), ('pending_rail')")

        drained = await drain(
            connection, load_ended_at=time.monotonic(), timeout_seconds=1.0, window_seconds=0.5
        )

        assert drained.seconds is None
        assert drained.at_end.unfinished == 1
        assert drained.completed_within_window == 1
    finally:
        await connection.close()
