"""Sandbox rails answer by reference as SPEC §6 says: `sandbox:reject:CODE` is rejected with
ISO reason CODE (MS03 when CODE is not a valid code), `sandbox:timeout:N` is unanswered for
attempts 1..N and accepted after, anything else is accepted; every answer carries a pacs.002
that parses back to the same status and reason, the same (reference, attempt) always gets the
same answer, latency is drawn within the configured bounds, and a message that is not a
pacs.008 is rejected as an invalid format."""

from __future__ import annotations

import datetime
import functools
import uuid
import xml.etree.ElementTree as ET

import pytest

from ledger.invariants import InvariantViolation
from rails.adapter import CircuitBreaker, RailSubmission, ResilientRail, RetryPolicy
from rails.bank_details import validate_bank_details
from rails.corridors import Rail
from rails.iso20022 import PayoutInstruction, build_pacs008, parse_pacs002
from rails.sandbox import SandboxRail, reject_reason, silent_attempts

now = datetime.datetime(2026, 11, 21, 10, 30, tzinfo=datetime.UTC)
message_id = "KVR-MSG-1"
end_to_end_id = "tr_01JD3EXAMPLE"
pacs002_ns = {"p": "urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10"}


@functools.cache
def _pacs008(reference: str) -> bytes:
    return build_pacs008(
        PayoutInstruction(
            message_id=message_id,
            end_to_end_id=end_to_end_id,
            uetr=uuid.UUID("8a562c67-ca16-48ba-b074-65581be6f011"),
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
    reference: str, attempt: int = 1, *, pacs008: bytes | None = None
) -> RailSubmission:
    return RailSubmission(
        transfer_id=(1 << 100) + 5,
        attempt=attempt,
        rail=Rail.SEPA_INSTANT,
        end_to_end_id=end_to_end_id,
        reference=reference,
        pacs008=_pacs008(reference) if pacs008 is None else pacs008,
    )


def _sandbox(**overrides: int) -> SandboxRail:
    return SandboxRail(
        latency_ms_min=overrides.get("latency_ms_min", 0),
        latency_ms_max=overrides.get("latency_ms_max", 2),
        now=lambda: now,
    )


async def test_an_ordinary_reference_is_accepted_with_a_settled_status_report() -> None:
    response = await _sandbox().submit(_submission("INV-2026-0042"))
    assert (response.outcome, response.reason_code) == ("accepted", None)
    assert response.pacs002 is not None
    (status,) = parse_pacs002(response.pacs002)
    assert (status.end_to_end_id, status.status, status.iso_status, status.reason_code) == (
        end_to_end_id,
        "accepted",
        "ACSC",
        None,
    )
    root = ET.fromstring(response.pacs002)
    assert root.findtext(".//p:OrgnlMsgId", namespaces=pacs002_ns) == message_id
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
    reference: str, code: str
) -> None:
    for attempt in (1, 2):
        response = await _sandbox().submit(_submission(reference, attempt))
        assert (response.outcome, response.reason_code) == ("rejected", code)
        assert response.pacs002 is not None
        (status,) = parse_pacs002(response.pacs002)
        assert (status.end_to_end_id, status.status, status.iso_status, status.reason_code) == (
            end_to_end_id,
            "rejected",
            "RJCT",
            code,
        )


@pytest.mark.parametrize("silent", [0, 1, 3])
async def test_a_timeout_reference_is_unanswered_for_n_attempts_then_accepted(silent: int) -> None:
    sandbox = _sandbox()
    reference = f"sandbox:timeout:{silent}"
    for attempt in range(1, silent + 1):
        response = await sandbox.submit(_submission(reference, attempt))
        assert (response.outcome, response.reason_code, response.pacs002) == (
            "no_answer",
            None,
            None,
        )
    for attempt in (silent + 1, silent + 5):
        response = await sandbox.submit(_submission(reference, attempt))
        assert response.outcome == "accepted"
        assert response.pacs002 is not None
        (status,) = parse_pacs002(response.pacs002)
        assert (status.status, status.iso_status) == ("accepted", "ACSC")


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


async def test_the_same_reference_and_attempt_always_get_the_same_answer() -> None:
    for reference in ("INV-1", "sandbox:reject:AM04", "sandbox:timeout:1"):
        for attempt in (1, 2):
            first = await _sandbox().submit(_submission(reference, attempt))
            again = await _sandbox().submit(_submission(reference, attempt))  # "After a crash".
            assert first == again


async def test_latency_is_drawn_within_the_bounds() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    draws = iter([0.0, 0.5, 1.0])
    sandbox = SandboxRail(
        latency_ms_min=20, latency_ms_max=120, random=lambda: next(draws), sleep=sleep
    )
    for _ in range(3):
        await sandbox.submit(_submission("INV-1"))
    assert slept == [0.02, 0.07, 0.12]
    default_random = SandboxRail(latency_ms_min=20, latency_ms_max=120, sleep=sleep)
    for _ in range(20):
        await default_random.submit(_submission("INV-1"))
    assert all(0.02 <= seconds <= 0.12 for seconds in slept[3:])


async def test_a_sandbox_for_one_rail_refuses_another_rails_submissions() -> None:
    sandbox = SandboxRail(rail=Rail.FASTER_PAYMENTS, latency_ms_min=0, latency_ms_max=0)
    with pytest.raises(InvariantViolation, match="sepa_instant submission"):
        await sandbox.submit(_submission("INV-1"))
    sepa_instant = SandboxRail(rail=Rail.SEPA_INSTANT, latency_ms_min=0, latency_ms_max=0)
    assert (await sepa_instant.submit(_submission("INV-1"))).outcome == "accepted"


@pytest.mark.parametrize("message", [b"not xml", b"<Document/>", b"<x/>" * 100_000])
async def test_a_message_that_is_not_a_pacs008_is_rejected_as_invalid_format(
    message: bytes,
) -> None:
    response = await _sandbox().submit(_submission("INV-1", pacs008=message))
    assert (response.outcome, response.reason_code) == ("rejected", "FF01")
    assert response.pacs002 is not None
    (status,) = parse_pacs002(response.pacs002)
    assert (status.status, status.reason_code) == ("rejected", "FF01")


async def test_the_sandbox_behind_the_resilient_rail() -> None:
    rail = ResilientRail(
        _sandbox(), breaker=CircuitBreaker(), retry=RetryPolicy(), timeout_ms=1_000
    )
    reference = "sandbox:timeout:1"
    assert (await rail.submit(_submission(reference, 1))).outcome == "no_answer"
    assert (await rail.submit(_submission(reference, 2))).outcome == "accepted"
    assert (await rail.submit(_submission("sandbox:reject:AC04"))).reason_code == "AC04"
    assert rail.breaker.state() == "closed"


def test_latency_bounds_are_checked() -> None:
    with pytest.raises(InvariantViolation):
        SandboxRail(latency_ms_min=10, latency_ms_max=5)
    with pytest.raises(InvariantViolation):
        SandboxRail(latency_ms_min=-1)
