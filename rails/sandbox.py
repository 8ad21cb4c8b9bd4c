"""Sandbox rails: what a tenant's sandbox transfers are sent to (SPEC §6).

A sandbox rail answers by the transfer's `reference`, so a tenant can drive every branch of
the lifecycle from its own integration tests:

| reference starts with | answer                                                          |
|-----------------------|-----------------------------------------------------------------|
| `sandbox:reject:CODE` | rejected, pacs.002 `RJCT` with ISO reason `CODE` (e.g. AC04)    |
| `sandbox:timeout:N`   | no answer for attempts 1..N, then accepted (pacs.002 `ACSC`)    |
| anything else         | accepted, pacs.002 `ACSC`                                       |

`CODE` must be an ISO 20022 status reason code: four uppercase letters or digits, ending
there (`sandbox:reject:AC04 invoice 7` is AC04). Anything else after `sandbox:reject:` (e.g.
`ac04`, `AC045`, nothing) still rejects, with `MS03` ("reason not specified by the agent"),
the ISO code for a rejection whose reason the agent does not give. `N` is a decimal count;
`sandbox:timeout:` without digits is an ordinary reference (accepted).

Like a scheme, the sandbox remembers each payment it received (`rails.memory`), by the
UETR and the end-to-end id its pacs.008 carries, for the duplicate-check window: the same
payment sent again (same UETR, same end-to-end id, whatever the attempt or message id) gets
the first answer again, the stored pacs.002 and outcome, and pays nothing more; a message
reusing a known end-to-end id under another UETR, or a known UETR under another end-to-end
id, is rejected with `AM05` (Duplication) and pays nothing. An attempt of a
`sandbox:timeout:N` reference that goes unanswered was never received: nothing is
remembered of it. The memory records each payment made with the count of its duplicate
receipts, and logs every receipt, for tests and operators to watch.

The receipt is recorded before the answer comes back, after a latency drawn uniformly from
[latency_ms_min, latency_ms_max]: a sender that dies meanwhile finds, when it sends again,
that the rail already has the payment. A batch (`submit_batch`) is one round trip: each of
its submissions is answered exactly as `submit` would answer it, one after the other in
their order (a payment twice in a batch is received, then a duplicate), after one latency
for the whole batch, and its receipts go to the memory in one call.

A timeout answer is returned as `no_answer` rather than by hanging past the caller's
deadline: it is what `ResilientRail` reports for a silent rail, and that timeout path is
tested on its own with a hanging fake, so the sandbox need not make every `sandbox:timeout`
transfer wait for a real deadline.

Like a real rail, the sandbox reads the pacs.008 it is sent: a message that is not one
carrying exactly one payment with its UETR and end-to-end id (or is too large) is rejected
with `FF01` (invalid file format) and remembered nowhere; the status report refers to the
original message id and end-to-end id.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import random as _random
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Sequence

import msgspec

from ledger.invariants import ensure
from rails.adapter import RailAdapter, RailResponse, RailSubmission, rail_batch_size_max
from rails.corridors import Rail
from rails.iso20022 import build_pacs002, pacs008_namespace
from rails.memory import RailMemory, Recall, Receipt, duplication_reason

latency_ms_min_default = 20
latency_ms_max_default = 120
reject_prefix = "sandbox:reject:"
timeout_prefix = "sandbox:timeout:"
reject_reason_fallback = "MS03"  # ISO: NotSpecifiedReasonAgentGenerated.
invalid_message_reason = "FF01"  # ISO: InvalidFileFormat.
accepted_iso_status = "ACSC"  # ISO: AcceptedSettlementCompleted.
rejected_iso_status = "RJCT"
message_bytes_max = 256 * 1024
# More silent attempts than any lifecycle will make; bounds the digits parsed from a reference.
timeout_attempts_max = 1_000_000
report_id_prefix = "SBX"
report_id_digest_bytes = 16  # 32 hex digits: with the prefix, the 35 characters ISO allows.
milliseconds_per_second = 1_000

_reject_pattern = re.compile(re.escape(reject_prefix) + r"([A-Z0-9]{4})(?![A-Za-z0-9])")
_timeout_pattern = re.compile(re.escape(timeout_prefix) + r"([0-9]+)")


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def reject_reason(reference: str) -> str | None:
    """The ISO reason a `sandbox:reject:` reference asks for; None for other references."""
    if not reference.startswith(reject_prefix):
        return None
    match = _reject_pattern.match(reference)
    return match.group(1) if match else reject_reason_fallback


def silent_attempts(reference: str) -> int:
    """How many attempts a `sandbox:timeout:N` reference leaves unanswered (0 otherwise)."""
    match = _timeout_pattern.match(reference)
    if match is None:
        return 0
    digits = match.group(1).lstrip("0") or "0"
    if len(digits) > len(str(timeout_attempts_max)):
        return timeout_attempts_max
    return min(int(digits), timeout_attempts_max)


class _Payment(msgspec.Struct, frozen=True, kw_only=True):
    """What the sandbox reads of a pacs.008: the message and the one payment it carries."""

    message_id: str
    uetr: uuid.UUID
    end_to_end_id: str


def _pacs008_root(message: bytes) -> ET.Element | None:
    """The message's pacs.008 document, or None if it is not one (or too large to read)."""
    if len(message) > message_bytes_max:
        return None
    try:
        root = ET.fromstring(message)  # noqa: S314 - ElementTree expands no external entities.
    except ET.ParseError:
        return None
    return root if root.tag == f"{{{pacs008_namespace}}}Document" else None


def _read_payment(message: bytes) -> _Payment | None:
    """The pacs.008's one payment, or None if `message` is not a pacs.008 this sandbox can
    read: not XML, not a pacs.008, not exactly one payment, or one without both its ids."""
    root = _pacs008_root(message)
    if root is None:
        return None
    ns = {"p": pacs008_namespace}
    message_id = root.findtext("p:FIToFICstmrCdtTrf/p:GrpHdr/p:MsgId", namespaces=ns)
    payments = root.findall("p:FIToFICstmrCdtTrf/p:CdtTrfTxInf/p:PmtId", namespaces=ns)
    if not message_id or len(payments) != 1:
        return None
    end_to_end_id = payments[0].findtext("p:EndToEndId", namespaces=ns)
    uetr = payments[0].findtext("p:UETR", namespaces=ns)
    try:
        parsed_uetr = uuid.UUID(uetr or "")
    except ValueError:
        return None
    if not end_to_end_id:
        return None
    return _Payment(message_id=message_id, uetr=parsed_uetr, end_to_end_id=end_to_end_id)


class SandboxRail(RailAdapter):
    """A sandbox rail answering by reference, remembering what it received in `memory`;
    `rail=None` serves every rail."""

    def __init__(
        self,
        *,
        memory: RailMemory,
        rail: Rail | None = None,
        latency_ms_min: int = latency_ms_min_default,
        latency_ms_max: int = latency_ms_max_default,
        random: Callable[[], float] = _random.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        now: Callable[[], datetime.datetime] = _utc_now,
    ) -> None:
        ensure(
            0 <= latency_ms_min <= latency_ms_max,
            "a sandbox's latency needs 0 <= latency_ms_min <= latency_ms_max",
        )
        self._memory = memory
        self._rail = rail
        self._latency_ms_min = latency_ms_min
        self._latency_ms_max = latency_ms_max
        self._random = random
        self._sleep = sleep
        self._now = now

    async def submit(self, submission: RailSubmission) -> RailResponse:
        """The answer SPEC §6 prescribes for this submission's reference and attempt, or
        the first answer to its payment if the rail received that payment before."""
        (response,) = await self.submit_batch([submission])
        return response

    async def submit_batch(self, submissions: Sequence[RailSubmission]) -> list[RailResponse]:
        """Each submission answered as `submit` would, one after the other in their order,
        after one latency for the whole batch and with one call to the memory for all the
        payments it receives."""
        ensure(
            len(submissions) <= rail_batch_size_max,
            f"a rail batch holds at most {rail_batch_size_max} submissions, not {len(submissions)}",
        )
        if not submissions:
            return []
        latency_seconds = self._latency_ms() / milliseconds_per_second
        decided = [self._decide(submission) for submission in submissions]
        receipts = [decision for decision in decided if isinstance(decision, Receipt)]
        recalls = iter(await self._memory.receive_many(receipts))
        responses = [
            self._recalled(submission, decision, next(recalls))
            if isinstance(decision, Receipt)
            else decision
            for submission, decision in zip(submissions, decided, strict=True)
        ]
        ensure(next(recalls, None) is None, "the memory recalls each receipt once")
        await self._sleep(latency_seconds)
        return responses

    def _decide(self, submission: RailSubmission) -> RailResponse | Receipt:
        """The answer to a submission the rail answers without its memory (an unreadable
        message, a silent attempt), or the receipt of the payment it carries."""
        ensure(
            self._rail is None or submission.rail is self._rail,
            f"a {submission.rail.value} submission was routed to the "
            f"{self._rail.value if self._rail else ''} sandbox",
        )
        payment = _read_payment(submission.pacs008)
        if payment is None:
            return self._answer(
                submission,
                original_message_id="-",
                end_to_end_id=submission.end_to_end_id,
                reason_code=invalid_message_reason,
            )
        if submission.attempt <= silent_attempts(submission.reference):
            return RailResponse(outcome="no_answer", reason_code=None, pacs002=None)
        answer = self._answer(
            submission,
            original_message_id=payment.message_id,
            end_to_end_id=payment.end_to_end_id,
            reason_code=reject_reason(submission.reference),
        )
        return Receipt(
            rail=submission.rail,
            uetr=payment.uetr,
            end_to_end_id=payment.end_to_end_id,
            message_id=payment.message_id,
            answer=answer,
        )

    def _recalled(
        self, submission: RailSubmission, receipt: Receipt, recall: Recall
    ) -> RailResponse:
        """What the memory's recall of a receipt answers: the answer to a new payment, the
        first answer to one received before, AM05 to one reusing another payment's id."""
        if recall.answer is not None:
            return recall.answer
        return self._answer(
            submission,
            original_message_id=receipt.message_id,
            end_to_end_id=receipt.end_to_end_id,
            reason_code=duplication_reason,
        )

    def _latency_ms(self) -> float:
        draw = self._random()
        ensure(0.0 <= draw <= 1.0, f"latency draws lie in [0, 1], not {draw}")
        return self._latency_ms_min + draw * (self._latency_ms_max - self._latency_ms_min)

    def _answer(
        self,
        submission: RailSubmission,
        *,
        original_message_id: str,
        end_to_end_id: str,
        reason_code: str | None,
    ) -> RailResponse:
        """A pacs.002 accepting (no reason) or rejecting (with `reason_code`) the payment."""
        digest = hashlib.blake2b(
            f"{submission.rail.value}:{submission.transfer_id}:{submission.attempt}".encode(),
            digest_size=report_id_digest_bytes,
        ).hexdigest()
        report = build_pacs002(
            message_id=f"{report_id_prefix}{digest.upper()}",
            original_message_id=original_message_id,
            end_to_end_id=end_to_end_id,
            iso_status=accepted_iso_status if reason_code is None else rejected_iso_status,
            reason_code=reason_code,
            created_at=self._now(),
        )
        return RailResponse(
            outcome="accepted" if reason_code is None else "rejected",
            reason_code=reason_code,
            pacs002=report,
        )
