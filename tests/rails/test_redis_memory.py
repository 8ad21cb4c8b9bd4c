"""The rails' memory in real Redis decides each receipt as a scheme does: a new payment is
received and remembered with its answer; the same UETR and end-to-end id again is a
duplicate answered with the first answer, whatever answer the new message would have had,
and counted; a known UETR under another end-to-end id, or a known end-to-end id under
another UETR, is a conflict that leaves nothing remembered; each rail keeps its own memory;
many receipts of one payment racing on separate connections make exactly one payment;
every key expires within the duplicate-check window and the log drops older entries; and
the log of receipts can be read, or awaited, entry by entry."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from ledger.invariants import InvariantViolation
from rails.adapter import RailResponse
from rails.corridors import Rail
from rails.memory import Recall, Receipt
from rails.redis_memory import RedisRailMemory
from tests import redis_server

racing_connections = 8
racing_receipts = 64
window_seconds = 3_600
# A guard against a hang, not a measurement: the awaited receipt comes at once.
await_guard_ms = 10_000


def _answer(outcome: str, message_id: str) -> RailResponse:
    """An answer whose status report names the message it answers, so two differ."""
    report = f"<pacs.002 for {message_id}/>".encode()
    if outcome == "accepted":
        return RailResponse(outcome="accepted", reason_code=None, pacs002=report)
    return RailResponse(outcome="rejected", reason_code="AC04", pacs002=report)


def _receipt(
    *,
    uetr: uuid.UUID,
    end_to_end_id: str,
    message_id: str = "MSG-1",
    outcome: str = "accepted",
    rail: Rail = Rail.SEPA_INSTANT,
) -> Receipt:
    return Receipt(
        rail=rail,
        uetr=uetr,
        end_to_end_id=end_to_end_id,
        message_id=message_id,
        answer=_answer(outcome, message_id),
    )


@pytest.fixture
def memory(redis_client: Redis, namespace: str) -> RedisRailMemory:
    return RedisRailMemory(redis_client, namespace=namespace, window_seconds=window_seconds)


async def test_a_new_payment_is_received_and_remembered_with_its_answer(
    memory: RedisRailMemory,
) -> None:
    uetr = uuid.uuid4()
    receipt = _receipt(uetr=uetr, end_to_end_id="E1")
    assert await memory.receive(receipt) == Recall(verdict="received", answer=receipt.answer)
    remembered = await memory.payment(rail=Rail.SEPA_INSTANT, uetr=uetr)
    assert remembered is not None
    assert (remembered.end_to_end_id, remembered.message_id, remembered.answer) == (
        "E1",
        "MSG-1",
        receipt.answer,
    )
    assert remembered.duplicates == 0
    (logged,) = await memory.receipts()
    assert (logged.verdict, logged.rail, logged.uetr, logged.end_to_end_id) == (
        "received",
        Rail.SEPA_INSTANT,
        uetr,
        "E1",
    )


async def test_the_same_payment_again_gets_the_first_answer_and_counts_as_a_duplicate(
    memory: RedisRailMemory,
) -> None:
    uetr = uuid.uuid4()
    first = _receipt(uetr=uetr, end_to_end_id="E1", message_id="MSG-1", outcome="rejected")
    await memory.receive(first)
    for attempt in (2, 3):
        # Another message, which on its own would have been accepted: the first answer wins.
        again = _receipt(uetr=uetr, end_to_end_id="E1", message_id=f"MSG-{attempt}")
        assert await memory.receive(again) == Recall(verdict="duplicate", answer=first.answer)
    remembered = await memory.payment(rail=Rail.SEPA_INSTANT, uetr=uetr)
    assert remembered is not None
    assert (remembered.message_id, remembered.answer, remembered.duplicates) == (
        "MSG-1",
        first.answer,
        2,
    )
    logged = await memory.receipts()
    assert [(entry.verdict, entry.message_id) for entry in logged] == [
        ("received", "MSG-1"),
        ("duplicate", "MSG-2"),
        ("duplicate", "MSG-3"),
    ]


async def test_an_id_reused_for_another_payment_is_a_conflict_that_leaves_nothing(
    memory: RedisRailMemory,
) -> None:
    paid, other = uuid.uuid4(), uuid.uuid4()
    await memory.receive(_receipt(uetr=paid, end_to_end_id="E1"))
    conflict = Recall(verdict="conflict", answer=None)
    assert await memory.receive(_receipt(uetr=other, end_to_end_id="E1")) == conflict
    assert await memory.receive(_receipt(uetr=paid, end_to_end_id="E2")) == conflict
    assert await memory.payment(rail=Rail.SEPA_INSTANT, uetr=other) is None
    remembered = await memory.payment(rail=Rail.SEPA_INSTANT, uetr=paid)
    assert remembered is not None
    assert (remembered.end_to_end_id, remembered.duplicates) == ("E1", 0)
    # Neither conflict claimed its new id: a payment that really is new still goes through.
    received = await memory.receive(_receipt(uetr=other, end_to_end_id="E2"))
    assert received.verdict == "received"
    verdicts = [entry.verdict for entry in await memory.receipts()]
    assert verdicts == ["received", "conflict", "conflict", "received"]


async def test_each_rail_keeps_its_own_memory(memory: RedisRailMemory) -> None:
    uetr = uuid.uuid4()
    for rail in (Rail.SEPA_INSTANT, Rail.FASTER_PAYMENTS):
        recall = await memory.receive(_receipt(uetr=uetr, end_to_end_id="E1", rail=rail))
        assert recall.verdict == "received"
    assert [entry.rail for entry in await memory.receipts()] == [
        Rail.SEPA_INSTANT,
        Rail.FASTER_PAYMENTS,
    ]


async def test_many_receipts_of_one_payment_racing_make_one_payment(namespace: str) -> None:
    """Each receipt comes over one of several connections, as from separate workers, each
    with an answer of its own: exactly one is received, and every other hears its answer."""
    clients = [Redis.from_url(redis_server.redis_url(0)) for _ in range(racing_connections)]
    try:
        memories = [RedisRailMemory(client, namespace=namespace) for client in clients]
        uetr = uuid.uuid4()
        receipts = [
            _receipt(uetr=uetr, end_to_end_id="E1", message_id=f"MSG-{index}")
            for index in range(racing_receipts)
        ]
        recalls = await asyncio.gather(
            *(
                memories[index % racing_connections].receive(receipt)
                for index, receipt in enumerate(receipts)
            )
        )
        received = [recall for recall in recalls if recall.verdict == "received"]
        assert len(received) == 1
        (first,) = received
        assert all(recall.answer == first.answer for recall in recalls)
        remembered = await memories[0].payment(rail=Rail.SEPA_INSTANT, uetr=uetr)
        assert remembered is not None
        assert (remembered.answer, remembered.duplicates) == (first.answer, racing_receipts - 1)
        verdicts = [entry.verdict for entry in await memories[0].receipts()]
        assert (verdicts.count("received"), len(verdicts)) == (1, racing_receipts)
    finally:
        for client in clients:
            await client.aclose()


async def test_what_is_remembered_expires_within_the_window(
    memory: RedisRailMemory, redis_client: Redis, namespace: str
) -> None:
    await memory.receive(_receipt(uetr=uuid.uuid4(), end_to_end_id="E1"))
    keys = [key async for key in redis_client.scan_iter(match=f"{namespace}:*")]
    assert len(keys) == 3  # The payment, its end-to-end id, the log.
    for key in keys:
        ttl_seconds = await redis_client.ttl(key)
        assert window_seconds // 2 < ttl_seconds <= window_seconds, key


async def test_the_log_drops_receipts_older_than_the_window(
    memory: RedisRailMemory, redis_client: Redis
) -> None:
    await redis_client.xadd(memory.receipts_key, {"verdict": "received"}, id="1-0")  # In 1970.
    await memory.receive(_receipt(uetr=uuid.uuid4(), end_to_end_id="E1"))
    (only,) = await redis_client.xrange(memory.receipts_key) or []
    assert only[0] != b"1-0"  # The new receipt alone is left.


async def test_receipts_can_be_awaited_as_they_come(
    memory: RedisRailMemory, namespace: str
) -> None:
    await memory.receive(_receipt(uetr=uuid.uuid4(), end_to_end_id="E1"))
    (seen,) = await memory.receipts()
    watcher = Redis.from_url(redis_server.redis_url(0))  # A blocking read has its own client.
    try:
        watching = RedisRailMemory(watcher, namespace=namespace)
        waiting = asyncio.create_task(
            watching.receipts(after=seen.stream_id, block_ms=await_guard_ms)
        )
        uetr = uuid.uuid4()
        await memory.receive(_receipt(uetr=uetr, end_to_end_id="E2"))
        (arrived,) = await waiting
        assert (arrived.verdict, arrived.uetr) == ("received", uetr)
        assert await memory.receipts(after=arrived.stream_id) == []
    finally:
        await watcher.aclose()


def test_a_window_outside_its_bounds_is_refused(redis_client: Redis) -> None:
    for window in (0, 30 * 86_400 + 1):
        with pytest.raises(InvariantViolation):
            RedisRailMemory(redis_client, window_seconds=window)


def test_a_rail_remembers_only_what_it_answered() -> None:
    silent = RailResponse(outcome="no_answer", reason_code=None, pacs002=None)
    with pytest.raises(InvariantViolation):
        Receipt(
            rail=Rail.CHAPS, uetr=uuid.uuid4(), end_to_end_id="E1", message_id="M", answer=silent
        )
    with pytest.raises(InvariantViolation):
        Recall(verdict="conflict", answer=_answer("accepted", "M"))
    with pytest.raises(InvariantViolation):
        Recall(verdict="duplicate", answer=None)
