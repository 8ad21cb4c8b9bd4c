"""A rail's memory of the payments it received: how a scheme answers a payment sent twice.

A scheme pays each payment once. It knows a payment by two identifiers the sender puts in
the message: the UETR (the unique end-to-end transaction reference, a UUID) and the
end-to-end id. It keeps both for a window of days, its duplicate-check window, and answers
what it receives again by them:

| received                                          | answer                              |
|---------------------------------------------------|-------------------------------------|
| a UETR and an end-to-end id it has never seen     | its answer; the payment is made     |
| the same UETR with the same end-to-end id again   | the first answer; no second payment |
| a known UETR under another end-to-end id, or a    | rejected, ISO reason AM05           |
| known end-to-end id under another UETR            | (Duplication); no payment           |

So a sender that re-sends a payment it never heard back about (a worker killed while the
rail answered, a timeout, a retry after a dropped connection) learns the first answer and
pays nothing twice; a sender that re-sends it under a new identifier is caught.

The memory is per payment, never per message: a pacs.008 carries one payment and a pain.001
many, and each payment is received, and remembered, on its own. A rail that takes a whole
batch as one pain.001 asks the memory about each of its payments, as the sandbox does for a
pacs.008's one payment. A rail answering a batch of messages at once hands the memory all
their receipts in one call (`receive_many`), decided one after the other in their order, as
if received one by one: a second receipt of a payment in the same batch is a duplicate of
the first.

`RailMemory` is what a rail needs of its memory; `rails.redis_memory` keeps it in Redis,
where every worker process sees it and a worker's death forgets nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Literal, Protocol

import msgspec

from ledger.invariants import ensure
from rails.adapter import RailResponse
from rails.corridors import Rail

duplication_reason = "AM05"  # ISO: Duplication.
# How long a rail remembers a payment by default, like a scheme's duplicate-check window:
# longer than any re-send of a payment a worker is still driving.
duplicate_window_seconds_default = 3 * 86_400
duplicate_window_seconds_max = 30 * 86_400

# `received`: the first receipt of the payment, which the rail makes; `duplicate`: the same
# payment again, answered as the first time; `conflict`: an identifier reused for another
# payment, rejected with AM05.
Verdict = Literal["received", "duplicate", "conflict"]


class Receipt(msgspec.Struct, frozen=True, kw_only=True):
    """One payment as a rail received it, with the answer the rail gives it if it is new."""

    rail: Rail
    uetr: uuid.UUID
    end_to_end_id: str
    message_id: str  # The message that carried it (a re-send comes in a new message).
    answer: RailResponse

    def __post_init__(self) -> None:
        ensure(self.end_to_end_id != "", "a payment received has an end-to-end id")
        ensure(
            self.answer.outcome != "no_answer",
            "a rail remembers only what it received, and it answers what it received",
        )


class Recall(msgspec.Struct, frozen=True, kw_only=True):
    """What the memory made of a receipt, and the answer due for a payment it knows."""

    verdict: Verdict
    answer: RailResponse | None  # The receipt's own answer, the first one, or None (conflict).

    def __post_init__(self) -> None:
        ensure(
            (self.answer is None) == (self.verdict == "conflict"),
            "a payment received or received again has its answer; a conflict has none",
        )


class RailMemory(Protocol):
    """A rail's record of the payments it received, deciding each receipt atomically."""

    async def receive(self, receipt: Receipt) -> Recall:
        """Remember the receipt if its payment is new; otherwise say what it duplicates."""
        ...

    async def receive_many(self, receipts: Sequence[Receipt]) -> list[Recall]:
        """`receive` for each receipt in turn, in one call: one recall per receipt, in their
        order, each decided atomically and seeing every receipt before it. At most
        `rail_batch_size_max` receipts."""
        ...
