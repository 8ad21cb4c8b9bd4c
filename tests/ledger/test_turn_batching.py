"""`TurnBatcher` hands the items of one event-loop turn on once, in order, within its bound.

Proves that items added during one turn reach `flush` together, in the order added, once the
turn's own code has run, and that the next turn starts a new queue; that an item that would
take the queue past `weight_max` sends the queue first and starts the next one, and that a
queue reaching the bound is sent at once, without waiting for the turn to end; that
`flush_now` sends what is queued and nothing when the queue is empty; that `scheduled` is
true from a turn's first item until its end; and that items added by `flush` itself wait for
the next turn.
"""

from __future__ import annotations

import asyncio

from ledger.turn_batching import TurnBatcher


class Recorder:
    def __init__(self) -> None:
        self.flushes: list[list[str]] = []

    def flush(self, items: list[str]) -> None:
        self.flushes.append(items)


async def _next_turn() -> None:
    await asyncio.sleep(0)


async def test_one_turn_is_one_flush_in_order() -> None:
    recorder = Recorder()
    batcher: TurnBatcher[str] = TurnBatcher(recorder.flush)
    for item in ("a", "b", "c"):
        batcher.add(item)
    assert recorder.flushes == []
    scheduled_during_the_turn = batcher.scheduled
    await _next_turn()
    assert recorder.flushes == [["a", "b", "c"]]
    assert (scheduled_during_the_turn, batcher.scheduled) == (True, False)
    batcher.add("d")
    await _next_turn()
    assert recorder.flushes == [["a", "b", "c"], ["d"]]


async def test_an_item_that_would_overflow_starts_the_next_queue() -> None:
    recorder = Recorder()
    batcher: TurnBatcher[str] = TurnBatcher(recorder.flush, weight_max=10)
    batcher.add("four", 4)
    batcher.add("five", 5)
    batcher.add("three", 3)  # 12 > 10: the first two go now.
    assert recorder.flushes == [["four", "five"]]
    await _next_turn()
    assert recorder.flushes == [["four", "five"], ["three"]]


async def test_a_full_queue_goes_at_once() -> None:
    recorder = Recorder()
    batcher: TurnBatcher[str] = TurnBatcher(recorder.flush, weight_max=2)
    for item in ("a", "b", "c", "d", "e"):
        batcher.add(item)
    assert recorder.flushes == [["a", "b"], ["c", "d"]]
    await _next_turn()
    assert recorder.flushes == [["a", "b"], ["c", "d"], ["e"]]


async def test_an_item_heavier_than_the_bound_goes_alone() -> None:
    recorder = Recorder()
    batcher: TurnBatcher[str] = TurnBatcher(recorder.flush, weight_max=3)
    batcher.add("light")
    batcher.add("heavy", 5)
    assert recorder.flushes == [["light"], ["heavy"]]
    await _next_turn()
    assert recorder.flushes == [["light"], ["heavy"]]


async def test_flush_now_sends_what_is_queued_only() -> None:
    recorder = Recorder()
    batcher: TurnBatcher[str] = TurnBatcher(recorder.flush)
    batcher.flush_now()
    assert recorder.flushes == []
    batcher.add("a")
    batcher.flush_now()
    assert recorder.flushes == [["a"]]
    await _next_turn()
    assert recorder.flushes == [["a"]]


async def test_items_added_by_flush_wait_for_the_next_turn() -> None:
    flushes: list[list[str]] = []

    def flush(items: list[str]) -> None:
        flushes.append(items)
        if items == ["first"]:
            batcher.add("added while flushing")

    batcher: TurnBatcher[str] = TurnBatcher(flush)
    batcher.add("first")
    await _next_turn()
    assert flushes == [["first"]]
    await _next_turn()
    assert flushes == [["first"], ["added while flushing"]]
