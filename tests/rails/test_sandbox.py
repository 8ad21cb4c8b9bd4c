"""Sandbox rails answer by reference as SPEC §6 says: `sandbox:reject:CODE` is rejected with
ISO reason CODE (MS03 when CODE is not a valid code), `sandbox:timeout:N` is unanswered for
attempts 1..N and accepted after, anything else is accepted; every answer carries a pacs.002
that parses back to the same status and reason, latency is drawn within the configured
bounds, and a message that is not a pacs.008 of one payment with its ids is rejected as an
invalid format. Like a scheme, the sandbox remembers what it received (in real Redis): a
payment sent again, in a new message of a later attempt, gets its first answer, byte for
byte; one reusing another payment's UETR or end-to-end id is rejected with AM05; an
unanswered timeout attempt is remembered nowhere; and workers racing to send one payment,
each on its own connection, make one payment and all hear the same answer.

A batch (`submit_batch`) is answered item by item exactly as the same submissions sent one
by one with `submit`, and leaves the same memory, over any mix of accepted, rejected and
timeout references, attempts, duplicates within and across batches, AM05 conflicts and
unreadable messages; it waits one latency and calls the memory once, after recording its
payments, whatever its size up to `rail_batch_size_max`, which it enforces."""

from __future__ import annotations

import asyncio
import datetime
import itertools
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from ledger.invariants import InvariantViolation
from rails.adapter import (
    CircuitBreaker,
    RailResponse,
    RailSubmission,
    ResilientRail,
    RetryPolicy,
    rail_batch_size_max,
)
from rails.bank_details import validate_bank_details
from rails.corridors import Rail
from rails.iso20022 import PayoutInstruction, build_pacs008, parse_pacs002
from rails.memory import Recall, Receipt
from rails.redis_memory import RedisRailMemory
from rails.sandbox import SandboxRail, reject_reason, silent_attempts
from tests import redis_server
from tests.rails.test_redis_memory import memories_apart

now = datetime.datetime(2026, 11, 21, 10, 30, tzinfo=datetime.UTC)
pacs002_ns = {"p": "urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10"}
racing_workers = 8
racing_sends = 48


class Payment:
    """One payment's identity: what every message carrying it repeats."""

    def __init__(self, *, uetr: uuid.UUID | None = None, end_to_end_id: str | None = None) -> None:
        self.uetr = uetr or uuid.uuid4()
        self.end_to_end_id = end_to_end_id or f"E2E{uuid.uuid4().hex[:20]}"


def _pacs008(payment: Payment, reference: str, attempt: int) -> bytes:
    return build_pacs008(
        PayoutInstruction(
            message_id=f"KVR-MSG-{attempt}",  # Each attempt is a message of its own.
            end_to_end_id=payment.end_to_end_id,
            uetr=payment.uetr,
            rail=Rail.SEPA_INSTANT,
            currency="EUR",
            amount_minor=123_456,
            minor_units=2,
            debtor_name="Kovra Ltd on behalf of Acme GmbH",
            debtor_agent_bic="KOVRGB2L",
            creditor_name="Supplier",
            creditor_details=validate_bank_details(
                country="DE", details={"iban": "DE89370400440532013000", "bic": "COBADEFFXXX"}
            ),
            reference=reference,
            created_at=now,
        )
    )


def _submission(
    reference: str,
    attempt: int = 1,
    *,
    payment: Payment | None = None,
    pacs008: bytes | None = None,
    rail: Rail = Rail.SEPA_INSTANT,
    transfer_id: int = (1 << 100) + 5,
) -> RailSubmission:
    paid = payment or Payment()
    return RailSubmission(
        transfer_id=transfer_id,
        attempt=attempt,
        rail=rail,
        end_to_end_id=paid.end_to_end_id,
        reference=reference,
        pacs008=_pacs008(paid, reference, attempt) if pacs008 is None else pacs008,
    )


@pytest.fixture
def memory(redis_client: Redis, namespace: str) -> RedisRailMemory:
    return RedisRailMemory(redis_client, namespace=namespace)


def _sandbox(memory: RedisRailMemory, **overrides: int) -> SandboxRail:
    return SandboxRail(
        memory=memory,
        latency_ms_min=overrides.get("latency_ms_min", 0),
        latency_ms_max=overrides.get("latency_ms_max", 2),
        now=lambda: now,
    )


async def test_an_ordinary_reference_is_accepted_with_a_settled_status_report(
    memory: RedisRailMemory,
) -> None:
    payment = Payment()
    response = await _sandbox(memory).submit(_submission("INV-2026-0042", payment=payment))
    assert (response.outcome, response.reason_code) == ("accepted", None)
    assert response.pacs002 is not None
    (status,) = parse_pacs002(response.pacs002)
    assert (status.end_to_end_id, status.status, status.iso_status, status.reason_code) == (
        payment.end_to_end_id,
        "accepted",
        "ACSC",
        None,
    )
    root = ET.fromstring(response.pacs002)
    assert root.findtext(".//p:OrgnlMsgId", namespaces=pacs002_ns) == "KVR-MSG-1"
    assert len(root.findtext(".//p:GrpHdr/p:MsgId", namespaces=pacs002_ns) or "") == 35


@pytest.mark.parametrize(
    ("reference", "code"),
    [
        ("sandbox:reject:AC04", "AC04"),
        ("sandbox:reject:AM04", "AM04"),
        ("sandbox:reject:AG01 invoice 7", "AG01"),
        ("sandbox:reject:NARR", "NARR"),
        ("sandbox:reject:ac04", "MS03"),  # Not uppercase: the fallback.
        ("sandbox:reject:AC045", "MS03"),  # Five characters: not a code.
        ("sandbox:reject:AC0", "MS03"),
        ("sandbox:reject:", "MS03"),
    ],
)
async def test_a_reject_reference_is_rejected_with_its_iso_reason(
    memory: RedisRailMemory, reference: str, code: str
) -> None:
    payment = Payment()
    response = await _sandbox(memory).submit(_submission(reference, payment=payment))
    assert (response.outcome, response.reason_code) == ("rejected", code)
    assert response.pacs002 is not None
    (status,) = parse_pacs002(response.pacs002)
    assert (status.end_to_end_id, status.status, status.iso_status, status.reason_code) == (
        payment.end_to_end_id,
        "rejected",
        "RJCT",
        code,
    )


@pytest.mark.parametrize("silent", [0, 1, 3])
async def test_a_timeout_reference_is_unanswered_for_n_attempts_then_accepted(
    memory: RedisRailMemory, silent: int
) -> None:
    sandbox = _sandbox(memory)
    payment = Payment()
    reference = f"sandbox:timeout:{silent}"
    for attempt in range(1, silent + 1):
        response = await sandbox.submit(_submission(reference, attempt, payment=payment))
        assert (response.outcome, response.reason_code, response.pacs002) == (
            "no_answer",
            None,
            None,
        )
    # Unanswered attempts were never received: the rail remembers nothing of them.
    assert await memory.payment(rail=Rail.SEPA_INSTANT, uetr=payment.uetr) is None
    assert await memory.receipts() == []
    response = await sandbox.submit(_submission(reference, silent + 1, payment=payment))
    assert response.outcome == "accepted"
    assert response.pacs002 is not None
    (status,) = parse_pacs002(response.pacs002)
    assert (status.status, status.iso_status) == ("accepted", "ACSC")
    remembered = await memory.payment(rail=Rail.SEPA_INSTANT, uetr=payment.uetr)
    assert remembered is not None
    assert (remembered.message_id, remembered.duplicates) == (f"KVR-MSG-{silent + 1}", 0)


def test_references_are_read_as_the_spec_says() -> None:
    assert [silent_attempts(r) for r in ("sandbox:timeout:2", "sandbox:timeout:007 x")] == [2, 7]
    assert silent_attempts("sandbox:timeout:" + "9" * 50) == 1_000_000  # Bounded.
    assert silent_attempts("sandbox:timeout:") == 0  # No count: an ordinary reference.
    assert silent_attempts("sandbox:timeout:x") == 0
    assert silent_attempts("SANDBOX:TIMEOUT:3") == 0
    assert silent_attempts("ref sandbox:timeout:3") == 0  # Only at the start.
    assert reject_reason("ref sandbox:reject:AC04") is None
    assert reject_reason("sandbox:reject") is None
    assert reject_reason("INV-1") is None


@pytest.mark.parametrize("reference", ["INV-1", "sandbox:reject:AM04", "sandbox:timeout:1"])
async def test_a_payment_sent_again_gets_its_first_answer_and_is_paid_once(
    memory: RedisRailMemory, reference: str
) -> None:
    payment = Payment()
    first_attempt = silent_attempts(reference) + 1
    first = await _sandbox(memory).submit(_submission(reference, first_attempt, payment=payment))
    assert first.outcome != "no_answer"
    # Sent again after a crash, each time by another worker's rail.
    for attempt in (first_attempt + 1, first_attempt + 2):
        again = await _sandbox(memory).submit(_submission(reference, attempt, payment=payment))
        assert again == first  # The stored pacs.002, byte for byte, not one for this message.
    remembered = await memory.payment(rail=Rail.SEPA_INSTANT, uetr=payment.uetr)
    assert remembered is not None
    assert (remembered.answer, remembered.duplicates) == (first, 2)
    verdicts = [receipt.verdict for receipt in await memory.receipts()]
    assert verdicts == ["received", "duplicate", "duplicate"]


async def test_a_known_id_under_another_payment_is_rejected_as_a_duplication(
    memory: RedisRailMemory,
) -> None:
    sandbox = _sandbox(memory)
    paid = Payment()
    assert (await sandbox.submit(_submission("INV-1", payment=paid))).outcome == "accepted"
    new_uetr = Payment(end_to_end_id=paid.end_to_end_id)
    new_end_to_end_id = Payment(uetr=paid.uetr)
    for reused in (new_uetr, new_end_to_end_id):
        response = await sandbox.submit(_submission("INV-1", 2, payment=reused))
        assert (response.outcome, response.reason_code) == ("rejected", "AM05")
        assert response.pacs002 is not None
        (status,) = parse_pacs002(response.pacs002)
        assert (status.end_to_end_id, status.iso_status, status.reason_code) == (
            reused.end_to_end_id,
            "RJCT",
            "AM05",
        )
    assert await memory.payment(rail=Rail.SEPA_INSTANT, uetr=new_uetr.uetr) is None
    remembered = await memory.payment(rail=Rail.SEPA_INSTANT, uetr=paid.uetr)
    assert remembered is not None
    assert (remembered.end_to_end_id, remembered.duplicates) == (paid.end_to_end_id, 0)


async def test_workers_racing_to_send_one_payment_make_one_payment(namespace: str) -> None:
    """Each worker has its own connection, as separate processes would."""
    clients = [Redis.from_url(redis_server.redis_url(0)) for _ in range(racing_workers)]
    try:
        sandboxes = [_sandbox(RedisRailMemory(client, namespace=namespace)) for client in clients]
        payment = Payment()
        answers = await asyncio.gather(
            *(
                sandboxes[send % racing_workers].submit(
                    _submission("INV-1", send + 1, payment=payment)
                )
                for send in range(racing_sends)
            )
        )
        assert len(set(answers)) == 1, "every sender hears the one payment's answer"
        memory = RedisRailMemory(clients[0], namespace=namespace)
        verdicts = [receipt.verdict for receipt in await memory.receipts()]
        assert verdicts.count("received") == 1
        assert verdicts.count("duplicate") == racing_sends - 1
        remembered = await memory.payment(rail=Rail.SEPA_INSTANT, uetr=payment.uetr)
        assert remembered is not None
        assert (remembered.answer, remembered.duplicates) == (answers[0], racing_sends - 1)
    finally:
        for client in clients:
            await client.aclose()


async def test_latency_is_drawn_within_the_bounds(memory: RedisRailMemory) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    draws = iter([0.0, 0.5, 1.0])
    sandbox = SandboxRail(
        memory=memory,
        latency_ms_min=20,
        latency_ms_max=120,
        random=lambda: next(draws),
        sleep=sleep,
    )
    for _ in range(3):
        await sandbox.submit(_submission("INV-1"))
    assert slept == [0.02, 0.07, 0.12]
    default_random = SandboxRail(memory=memory, latency_ms_min=20, latency_ms_max=120, sleep=sleep)
    for _ in range(20):
        await default_random.submit(_submission("INV-1"))
    assert all(0.02 <= seconds <= 0.12 for seconds in slept[3:])


async def test_the_rail_records_a_payment_before_it_answers(memory: RedisRailMemory) -> None:
    """A sender that dies while the rail takes its time has reached the rail all the same."""
    remembered_while_waiting = []
    payment = Payment()

    async def sleep(_: float) -> None:
        remembered_while_waiting.append(
            await memory.payment(rail=Rail.SEPA_INSTANT, uetr=payment.uetr)
        )

    sandbox = SandboxRail(memory=memory, latency_ms_min=0, latency_ms_max=0, sleep=sleep)
    response = await sandbox.submit(_submission("INV-1", payment=payment))
    (remembered,) = remembered_while_waiting
    assert remembered is not None
    assert remembered.answer == response


async def test_a_sandbox_for_one_rail_refuses_another_rails_submissions(
    memory: RedisRailMemory,
) -> None:
    sandbox = SandboxRail(
        memory=memory, rail=Rail.FASTER_PAYMENTS, latency_ms_min=0, latency_ms_max=0
    )
    with pytest.raises(InvariantViolation, match="sepa_instant submission"):
        await sandbox.submit(_submission("INV-1"))
    sepa_instant = SandboxRail(
        memory=memory, rail=Rail.SEPA_INSTANT, latency_ms_min=0, latency_ms_max=0
    )
    assert (await sepa_instant.submit(_submission("INV-1"))).outcome == "accepted"


def _without_uetr(message: bytes) -> bytes:
    start, end = message.index(b"<UETR>"), message.index(b"</UETR>") + len(b"</UETR>")
    return message[:start] + message[end:]


def _with_two_payments(message: bytes) -> bytes:
    start, end = message.index(b"<CdtTrfTxInf>"), message.index(b"</CdtTrfTxInf>")
    payment = message[start : end + len(b"</CdtTrfTxInf>")]
    return message[:start] + payment + payment + message[start + len(payment) :]


def _with_bad_uetr(message: bytes) -> bytes:
    start, end = message.index(b"<UETR>") + len(b"<UETR>"), message.index(b"</UETR>")
    return message[:start] + b"not-a-uuid" + message[end:]


@pytest.mark.parametrize(
    "message",
    [
        b"not xml",
        b"<Document/>",
        b"<x/>" * 100_000,
        _without_uetr(_pacs008(Payment(), "INV-1", 1)),
        _with_two_payments(_pacs008(Payment(), "INV-1", 1)),
        _with_bad_uetr(_pacs008(Payment(), "INV-1", 1)),
    ],
)
async def test_a_message_that_is_not_a_pacs008_of_one_payment_is_rejected_as_invalid_format(
    memory: RedisRailMemory, message: bytes
) -> None:
    response = await _sandbox(memory).submit(_submission("INV-1", pacs008=message))
    assert (response.outcome, response.reason_code) == ("rejected", "FF01")
    assert response.pacs002 is not None
    (status,) = parse_pacs002(response.pacs002)
    assert (status.status, status.reason_code) == ("rejected", "FF01")
    assert await memory.receipts() == []  # Unread, it was remembered nowhere.


async def test_the_sandbox_behind_the_resilient_rail(memory: RedisRailMemory) -> None:
    rail = ResilientRail(
        _sandbox(memory), breaker=CircuitBreaker(), retry=RetryPolicy(), timeout_ms=1_000
    )
    payment = Payment()
    reference = "sandbox:timeout:1"
    assert (await rail.submit(_submission(reference, 1, payment=payment))).outcome == "no_answer"
    assert (await rail.submit(_submission(reference, 2, payment=payment))).outcome == "accepted"
    assert (await rail.submit(_submission("sandbox:reject:AC04"))).reason_code == "AC04"
    assert rail.breaker.state() == "closed"


def test_latency_bounds_are_checked(memory: RedisRailMemory) -> None:
    with pytest.raises(InvariantViolation):
        SandboxRail(memory=memory, latency_ms_min=10, latency_ms_max=5)
    with pytest.raises(InvariantViolation):
        SandboxRail(memory=memory, latency_ms_min=-1)


# Batches.


class RecordingSleep:
    """A sleep that returns at once and remembers each wait (seconds)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class CountedMemory:
    """The real memory, with the calls made to it counted."""

    def __init__(self, memory: RedisRailMemory) -> None:
        self.memory = memory
        self.batches: list[int] = []

    async def receive(self, receipt: Receipt) -> Recall:
        (recall,) = await self.receive_many([receipt])
        return recall

    async def receive_many(self, receipts: Sequence[Receipt]) -> list[Recall]:
        self.batches.append(len(receipts))
        return await self.memory.receive_many(receipts)


# A few payments, sent again and again, and their ids recombined into conflicting payments.
payments_pool = [Payment() for _ in range(3)]
identities = [
    *payments_pool,
    Payment(uetr=payments_pool[0].uetr, end_to_end_id=payments_pool[1].end_to_end_id),
    Payment(end_to_end_id=payments_pool[2].end_to_end_id),
]
references = [
    "INV-1",
    "sandbox:reject:AC04",
    "sandbox:reject:ac04",
    "sandbox:timeout:1",
    "sandbox:timeout:2",
]
unreadable_messages = [b"not xml", b"<Document/>"]


@st.composite
def submissions(draw: st.DrawFn) -> RailSubmission:
    """Any submission the sandbox may get: any of the pool's payments or conflicting ones,
    under any reference and attempt, on one of two rails, or a message it cannot read."""
    payment = draw(st.sampled_from(identities))
    reference = draw(st.sampled_from(references))
    attempt = draw(st.integers(min_value=1, max_value=3))
    unreadable = draw(st.none() | st.sampled_from(unreadable_messages))
    return _submission(
        reference,
        attempt,
        payment=payment,
        pacs008=unreadable,
        rail=draw(st.sampled_from([Rail.SEPA_INSTANT, Rail.FASTER_PAYMENTS])),
        transfer_id=identities.index(payment) + 1,
    )


@settings(max_examples=60, deadline=None)
@given(
    sequence=st.lists(submissions(), min_size=1, max_size=16),
    cuts=st.sets(st.integers(min_value=1, max_value=15), max_size=3),
)
def test_a_batch_is_answered_as_the_same_submissions_one_by_one(
    sequence: list[RailSubmission], cuts: set[int]
) -> None:
    asyncio.run(_answer_alike(sequence, cuts))


async def _answer_alike(sequence: list[RailSubmission], cuts: set[int]) -> None:
    bounds = [0, *sorted(cut for cut in cuts if cut < len(sequence)), len(sequence)]
    batches = [sequence[start:end] for start, end in itertools.pairwise(bounds)]
    async with memories_apart(2) as (batched_memory, one_by_one_memory):
        slept = RecordingSleep()
        batched = SandboxRail(memory=batched_memory, sleep=slept, now=lambda: now)
        one_by_one = SandboxRail(memory=one_by_one_memory, sleep=RecordingSleep(), now=lambda: now)
        answers = [answer for batch in batches for answer in await batched.submit_batch(batch)]
        singly = [await one_by_one.submit(submission) for submission in sequence]
        assert answers == singly
        assert len(slept.waits) == len(batches)
        logs = [
            [(e.verdict, e.rail, e.uetr, e.end_to_end_id, e.message_id) for e in await m.receipts()]
            for m in (batched_memory, one_by_one_memory)
        ]
        assert logs[0] == logs[1]
        for payment, rail in itertools.product(
            identities, (Rail.SEPA_INSTANT, Rail.FASTER_PAYMENTS)
        ):
            assert await batched_memory.payment(
                rail=rail, uetr=payment.uetr
            ) == await one_by_one_memory.payment(rail=rail, uetr=payment.uetr)


async def test_a_batch_of_every_kind_of_answer(memory: RedisRailMemory) -> None:
    """Each answer of a batch, in its order, including a payment twice in the batch."""
    paid, rejected, silent = Payment(), Payment(), Payment()
    batch = [
        _submission("INV-1", payment=paid),
        _submission("sandbox:reject:AM04", payment=rejected),
        _submission("sandbox:timeout:1", payment=silent),
        _submission("INV-1", 2, payment=paid),  # Sent again within the batch.
        _submission("INV-1", payment=Payment(end_to_end_id=paid.end_to_end_id)),
        _submission("INV-1", pacs008=b"not xml"),
    ]
    answers = await _sandbox(memory).submit_batch(batch)
    assert [(answer.outcome, answer.reason_code) for answer in answers] == [
        ("accepted", None),
        ("rejected", "AM04"),
        ("no_answer", None),
        ("accepted", None),
        ("rejected", "AM05"),
        ("rejected", "FF01"),
    ]
    assert answers[3] == answers[0]  # The first answer, byte for byte.
    verdicts = [receipt.verdict for receipt in await memory.receipts()]
    assert verdicts == ["received", "received", "duplicate", "conflict"]


async def test_a_batch_waits_one_latency_and_calls_the_memory_once(
    memory: RedisRailMemory,
) -> None:
    counted = CountedMemory(memory)
    slept = RecordingSleep()
    sandbox = SandboxRail(
        memory=counted, latency_ms_min=20, latency_ms_max=120, random=lambda: 0.5, sleep=slept
    )
    batch = [_submission("INV-1") for _ in range(rail_batch_size_max)]
    answers = await sandbox.submit_batch(batch)
    assert [answer.outcome for answer in answers] == ["accepted"] * rail_batch_size_max
    assert (slept.waits, counted.batches) == ([0.07], [rail_batch_size_max])
    silent = [_submission("sandbox:timeout:1"), _submission("INV-1", pacs008=b"not xml")]
    assert [answer.outcome for answer in await sandbox.submit_batch(silent)] == [
        "no_answer",
        "rejected",
    ]
    assert counted.batches == [rail_batch_size_max, 0]  # Nothing received, nothing stored.
    assert await sandbox.submit_batch([]) == []
    assert len(slept.waits) == 2  # An empty batch is no round trip.


async def test_a_batch_records_its_payments_before_it_answers(memory: RedisRailMemory) -> None:
    payments = [Payment(), Payment()]
    remembered_while_waiting: list[RailResponse | None] = []

    async def sleep(_: float) -> None:
        for payment in payments:
            remembered = await memory.payment(rail=Rail.SEPA_INSTANT, uetr=payment.uetr)
            remembered_while_waiting.append(None if remembered is None else remembered.answer)

    sandbox = SandboxRail(memory=memory, latency_ms_min=0, latency_ms_max=0, sleep=sleep)
    answers = await sandbox.submit_batch([_submission("INV-1", payment=p) for p in payments])
    assert remembered_while_waiting == answers


async def test_a_batch_is_bounded_and_checked_before_anything_is_received(
    memory: RedisRailMemory,
) -> None:
    sandbox = _sandbox(memory)
    with pytest.raises(InvariantViolation, match="at most"):
        await sandbox.submit_batch([_submission("INV-1")] * (rail_batch_size_max + 1))
    faster_payments = SandboxRail(
        memory=memory, rail=Rail.FASTER_PAYMENTS, latency_ms_min=0, latency_ms_max=0
    )
    mixed = [_submission("INV-1", rail=Rail.FASTER_PAYMENTS), _submission("INV-1")]
    with pytest.raises(InvariantViolation, match="sepa_instant submission"):
        await faster_payments.submit_batch(mixed)
    assert await memory.receipts() == []
