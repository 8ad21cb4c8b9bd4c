"""Sandbox rails answer by reference as SPEC §6 says: `sandbox:reject:CODE` is rejected with
ISO reason CODE (MS03 when CODE is not a valid code), `sandbox:timeout:N` is unanswered for
attempts 1..N and accepted after, anything else is accepted; every answer carries a pacs.002
that parses back to the same status and reason, latency is drawn within the configured
bounds, and a message that is not a pacs.008 of one payment with its ids is rejected as an
invalid format. Like a scheme, the sandbox remembers what it received (in real Redis): a
payment sent again, in a new message of a later attempt, gets its first answer, byte for
byte; one reusing another payment's UETR or end-to-end id is rejected with AM05; an
unanswered timeout attempt is remembered nowhere; and workers racing to send one payment,
each on its own connection, make one payment and all hear the same answer."""

from __future__ import annotations

import asyncio
import datetime
import uuid
import xml.etree.ElementTree as ET

import pytest
from redis.asyncio import Redis

from ledger.invariants import InvariantViolation
from rails.adapter import CircuitBreaker, RailSubmission, ResilientRail, RetryPolicy
from rails.bank_details import validate_bank_details
from rails.corridors import Rail
from rails.iso20022 import PayoutInstruction, build_pacs008, parse_pacs002
from rails.redis_memory import RedisRailMemory
from rails.sandbox import SandboxRail, reject_reason, silent_attempts
from tests import redis_server

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
) -> RailSubmission:
    paid = payment or Payment()
    return RailSubmission(
        transfer_id=(1 << 100) + 5,
        attempt=attempt,
        rail=Rail.SEPA_INSTANT,
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
