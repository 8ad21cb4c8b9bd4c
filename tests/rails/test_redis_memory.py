"""The rails' memory in real Redis decides each receipt as a scheme does: a new payment is
received and remembered with its answer; the same UETR and end-to-end id again is a
duplicate answered with the first answer, whatever answer the new message would have had,
and counted; a known UETR under another end-to-end id, or a known end-to-end id under
another UETR, is a conflict that leaves nothing remembered; each rail keeps its own memory;
many receipts of one payment racing on separate connections make exactly one payment;
every key expires within the duplicate-check window and the log drops older entries; and
the log of receipts can be read, or awaited, entry by entry.

A batch of receipts (`receive_many`) is decided in one round trip, in its order, each
receipt seeing those before it: its recalls, the log and the payments remembered are those
of the same receipts received one by one, and those of an independent model of the table in
`rails.memory`, over any mix of new payments, duplicates within and across batches,
conflicts and rails; two tasks receiving batches of the same payments at once, each on its
own connection, make each payment exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from ledger.invariants import InvariantViolation
from rails.adapter import RailResponse, rail_batch_size_max
from rails.corridors import Rail
from rails.memory import Recall, Receipt
from rails.redis_memory import RedisRailMemory
from tests import redis_server

racing_connections = 8
racing_receipts = 64
racing_payments = 40
racing_batches = 6
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


# Batches of receipts.


async def test_a_batch_is_decided_in_its_order_each_receipt_seeing_the_ones_before(
    memory: RedisRailMemory,
) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    batch = [
        _receipt(uetr=first, end_to_end_id="E1", message_id="MSG-1", outcome="rejected"),
        _receipt(uetr=first, end_to_end_id="E1", message_id="MSG-2"),  # Sent again.
        _receipt(uetr=uuid.uuid4(), end_to_end_id="E1", message_id="MSG-3"),  # E1 reused.
        _receipt(uetr=second, end_to_end_id="E2", message_id="MSG-4"),
        _receipt(uetr=second, end_to_end_id="E3", message_id="MSG-5"),  # Its UETR reused.
        _receipt(uetr=first, end_to_end_id="E1", message_id="MSG-6"),
    ]
    recalls = await memory.receive_many(batch)
    assert recalls == [
        Recall(verdict="received", answer=batch[0].answer),
        Recall(verdict="duplicate", answer=batch[0].answer),
        Recall(verdict="conflict", answer=None),
        Recall(verdict="received", answer=batch[3].answer),
        Recall(verdict="conflict", answer=None),
        Recall(verdict="duplicate", answer=batch[0].answer),
    ]
    remembered = await memory.payment(rail=Rail.SEPA_INSTANT, uetr=first)
    assert remembered is not None
    assert (remembered.message_id, remembered.duplicates) == ("MSG-1", 2)
    logged = await memory.receipts()
    assert [(entry.verdict, entry.message_id) for entry in logged] == [
        (recall.verdict, receipt.message_id) for recall, receipt in zip(recalls, batch, strict=True)
    ]


async def test_a_batch_is_one_round_trip(
    memory: RedisRailMemory, redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counted on the real client, whose commands still reach the real server."""
    commands: list[object] = []
    execute: Callable[..., Awaitable[Any]] = redis_client.execute_command

    async def counted(*args: Any, **options: Any) -> Any:
        commands.append(args[0])
        return await execute(*args, **options)

    monkeypatch.setattr(redis_client, "execute_command", counted)
    await memory.receive(_receipt(uetr=uuid.uuid4(), end_to_end_id="E0"))  # Loads the script.
    commands.clear()
    batch = [
        _receipt(uetr=uuid.uuid4(), end_to_end_id=f"E{index}")
        for index in range(1, rail_batch_size_max + 1)
    ]
    recalls = await memory.receive_many(batch)
    assert [recall.verdict for recall in recalls] == ["received"] * rail_batch_size_max
    assert commands == ["EVALSHA"]
    assert await memory.receive_many([]) == []
    assert commands == ["EVALSHA"]  # Nothing to receive, nothing asked.


async def test_a_batch_is_bounded(memory: RedisRailMemory) -> None:
    batch = [_receipt(uetr=uuid.uuid4(), end_to_end_id="E1")] * (rail_batch_size_max + 1)
    with pytest.raises(InvariantViolation, match="at most"):
        await memory.receive_many(batch)
    assert await memory.receipts() == []


class SchemeModel:
    """The table of `rails.memory`, kept in dictionaries: what a scheme answers a receipt."""

    def __init__(self) -> None:
        self.payments: dict[tuple[Rail, uuid.UUID], tuple[str, RailResponse, int]] = {}
        self.uetrs: dict[tuple[Rail, str], uuid.UUID] = {}

    def receive(self, receipt: Receipt) -> Recall:
        payment = (receipt.rail, receipt.uetr)
        end_to_end = (receipt.rail, receipt.end_to_end_id)
        known = self.payments.get(payment)
        known_uetr = self.uetrs.get(end_to_end)
        if known is None and known_uetr is None:
            self.payments[payment] = (receipt.end_to_end_id, receipt.answer, 0)
            self.uetrs[end_to_end] = receipt.uetr
            return Recall(verdict="received", answer=receipt.answer)
        if known is not None and known[0] == receipt.end_to_end_id and known_uetr == receipt.uetr:
            self.payments[payment] = (known[0], known[1], known[2] + 1)
            return Recall(verdict="duplicate", answer=known[1])
        return Recall(verdict="conflict", answer=None)


# A few identifiers, combined freely: new payments, the same payment again, and ids reused.
uetr_pool = [uuid.UUID(int=index, version=4) for index in range(4)]
receipts = st.builds(
    _receipt,
    uetr=st.sampled_from(uetr_pool),
    end_to_end_id=st.sampled_from(["E1", "E2", "E3", "E4"]),
    message_id=st.sampled_from(["MSG-1", "MSG-2", "MSG-3"]),
    outcome=st.sampled_from(["accepted", "rejected"]),
    rail=st.sampled_from([Rail.SEPA_INSTANT, Rail.CHAPS]),
)


@contextlib.asynccontextmanager
async def memories_apart(count: int) -> AsyncIterator[list[RedisRailMemory]]:
    """`count` memories, each in a namespace of its own, every key removed afterwards."""
    redis = Redis.from_url(redis_server.redis_url(0))
    namespaces = [f"kovra-test-{secrets.token_hex(8)}" for _ in range(count)]
    try:
        yield [RedisRailMemory(redis, namespace=namespace) for namespace in namespaces]
    finally:
        for namespace in namespaces:
            keys = [key async for key in redis.scan_iter(match=f"{namespace}:*")]
            if keys:
                await redis.delete(*keys)
        await redis.aclose()


@settings(max_examples=80, deadline=None)
@given(
    sequence=st.lists(receipts, min_size=1, max_size=24),
    cuts=st.sets(st.integers(min_value=1, max_value=23), max_size=4),
)
def test_a_batch_decides_as_the_same_receipts_one_by_one_and_as_the_model(
    sequence: list[Receipt], cuts: set[int]
) -> None:
    asyncio.run(_decide_alike(sequence, cuts))


async def _decide_alike(sequence: list[Receipt], cuts: set[int]) -> None:
    bounds = [0, *sorted(cut for cut in cuts if cut < len(sequence)), len(sequence)]
    batches = [sequence[start:end] for start, end in itertools.pairwise(bounds)]
    model = SchemeModel()
    async with memories_apart(2) as (batched, one_by_one):
        recalls = [recall for batch in batches for recall in await batched.receive_many(batch)]
        singly = [await one_by_one.receive(receipt) for receipt in sequence]
        modelled = [model.receive(receipt) for receipt in sequence]
        assert recalls == singly == modelled
        logs = [
            [(e.verdict, e.rail, e.uetr, e.end_to_end_id, e.message_id) for e in await m.receipts()]
            for m in (batched, one_by_one)
        ]
        assert logs[0] == logs[1]
        assert [entry[0] for entry in logs[0]] == [recall.verdict for recall in modelled]
        for (rail, uetr), (end_to_end_id, answer, duplicates) in model.payments.items():
            for memory in (batched, one_by_one):
                remembered = await memory.payment(rail=rail, uetr=uetr)
                assert remembered is not None
                assert (remembered.end_to_end_id, remembered.answer, remembered.duplicates) == (
                    end_to_end_id,
                    answer,
                    duplicates,
                )


async def test_two_tasks_receiving_batches_of_the_same_payments_make_each_once(
    namespace: str,
) -> None:
    """Two workers' rails, each on its own connection, receive overlapping batches of the
    same payments at once, in opposite orders: each payment is received exactly once, and
    every receipt of it hears the one answer."""
    clients = [Redis.from_url(redis_server.redis_url(0)) for _ in range(2)]
    try:
        memories = [RedisRailMemory(client, namespace=namespace) for client in clients]
        uetrs = [uuid.uuid4() for _ in range(racing_payments)]

        def batch(worker: int, round_number: int) -> list[Receipt]:
            order = uetrs if worker == 0 else uetrs[::-1]
            return [
                _receipt(
                    uetr=uetr,
                    end_to_end_id=f"E-{uetr}",
                    message_id=f"MSG-{worker}-{round_number}",
                    outcome="accepted" if worker == 0 else "rejected",
                )
                for uetr in order
            ]

        async def worker(index: int) -> list[tuple[uuid.UUID, Recall]]:
            recalls = []
            for round_number in range(racing_batches):
                receipts = batch(index, round_number)
                answered = await memories[index].receive_many(receipts)
                recalls += [(r.uetr, recall) for r, recall in zip(receipts, answered, strict=True)]
            return recalls

        results = await asyncio.gather(worker(0), worker(1))
        by_payment: dict[uuid.UUID, list[Recall]] = {uetr: [] for uetr in uetrs}
        for uetr, recall in results[0] + results[1]:
            by_payment[uetr].append(recall)
        for uetr, recalls in by_payment.items():
            assert [recall.verdict for recall in recalls].count("received") == 1, uetr
            assert len({recall.answer for recall in recalls}) == 1, uetr
            remembered = await memories[0].payment(rail=Rail.SEPA_INSTANT, uetr=uetr)
            assert remembered is not None
            assert remembered.duplicates == 2 * racing_batches - 1
        verdicts = [entry.verdict for entry in await memories[0].receipts()]
        assert verdicts.count("received") == racing_payments
        assert len(verdicts) == 2 * racing_batches * racing_payments
    finally:
        for client in clients:
            await client.aclose()
