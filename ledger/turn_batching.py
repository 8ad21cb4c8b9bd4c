"""Work queued during one turn of the event loop, handed on once, when the turn ends.

Under load a gateway process has dozens of requests in flight, each making a few small calls:
a ledger transfer, some Redis commands, a row to insert. Paid one call at a time, each pays
for its own request, write or round trip; paid once for all the calls of one turn, the cost is
shared, which is what TigerBeetle's own clients do with concurrent requests. `TurnBatcher` is
that mechanism, for the coalescing ledger client, the embedded engine, the gateway's Redis
pipeline and its batched inserts: each call adds an item, the first item of a turn schedules
one `call_soon`, and that callback hands every item added meanwhile, in order, to the owner's
`flush`, which sends them as one.

Where the owner's requests have a size limit (`weight_max`: transfers a ledger request
carries, commands one write sends), an item that would take the queue past it sends the
queue first and starts the next, and a queue that reaches it is sent at once. What `flush`
does with the items, and how it answers or fails their callers, is the owner's.

`add` is on the path of every payment: it awaits nothing, creates no task and allocates
nothing but the queue itself (one list a turn).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Generic, TypeVar

from ledger.invariants import ensure

ItemT = TypeVar("ItemT")


class TurnBatcher(Generic[ItemT]):
    """Queues items during a loop turn and passes them, in order, to `flush` once.

    `flush` is called with the queue's list, which is the caller's from then on; it must not
    block (it may start tasks). Items added while it runs belong to the next queue.
    """

    __slots__ = ("_flush", "_items", "_scheduled", "_weight", "_weight_max")

    def __init__(
        self, flush: Callable[[list[ItemT]], None], *, weight_max: int | None = None
    ) -> None:
        ensure(weight_max is None or weight_max > 0, "a positive bound, or none")
        self._flush = flush
        self._items: list[ItemT] = []
        self._weight = 0
        self._weight_max = sys.maxsize if weight_max is None else weight_max
        self._scheduled = False

    @property
    def scheduled(self) -> bool:
        """Whether the end of this turn is still to hand the queue on."""
        return self._scheduled

    def add(self, item: ItemT, weight: int = 1) -> None:
        """Queue `item`, which counts `weight` towards `weight_max` (one by default)."""
        weight_total = self._weight + weight
        if weight_total > self._weight_max and self._items:
            self.flush_now()  # It would overflow: the queue goes now, `item` starts the next.
            weight_total = weight
        self._items.append(item)
        self._weight = weight_total
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._end_turn)
        if weight_total >= self._weight_max:
            self.flush_now()  # Full: nothing more can join it.

    def flush_now(self) -> None:
        """Hand the queue on now (a full queue, or an owner closing), if it holds anything."""
        if not self._items:
            return
        items, self._items, self._weight = self._items, [], 0
        self._flush(items)

    def _end_turn(self) -> None:
        self._scheduled = False
        self.flush_now()
