"""The lifecycle worker: submits transfers to their rail and acts on what the rail says, a
batch at a time.

processing → submitted (pacs.008 recorded, then sent) → completed (ledger committed and
settled); a rejection voids the hold (rail_rejected → refunded, the wallet whole to the
minor unit); no answer → pending_rail, retried later with backoff and jitter; a cancelled or
blocked transfer's hold is voided.

A pass works on up to `claim_batch_size` transfers with a fixed number of round trips, not
a number per transfer: one claiming UPDATE (which also makes each transfer to send
`submitted`, so the tenant can no longer cancel it), one read of their recipients (Redis,
then Postgres for what Redis lacks), one INSERT of every attempt's pacs.008 and
`transfer.submitted` event (recorded before sending), one rail call per corridor, one
TigerBeetle request per ledger step (commit and settle, or void), and one statement moving
every transfer to where its answer leads with its events and status reports.

Each step writes the ledger first where money moves (idempotent: ids derive from the
transfer) and then the states with their events, so a worker killed at any instant leaves
work the next pass finishes exactly once. Rows are leased, so several workers never drive
the same transfer at once. A worker killed after sending and before recording the answer
leaves the transfer `submitted`; the next pass sends it again as a new attempt (a new message
id) of the same payment: its UETR and end-to-end id derive from the transfer, never from the
attempt, so the rail, which remembers what it received (`rails.memory`), answers it as the
first time and pays nothing twice.
"""

from __future__ import annotations

import asyncio
import datetime
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import asyncpg
import structlog

from gateway.transfers.recipients import RecipientRecord, Recipients
from gateway.transfers.records import (
    Event,
    Move,
    Submission,
    TransferRow,
    claim_for_submission,
    parked_until,
    record_submissions,
    release,
    transition_many,
)
from gateway.transfers.service import event_id, event_payload, payout_of
from ledger.errors import LedgerError
from ledger.invariants import InvariantViolation, ensure
from ledger.payouts import Payouts
from ledger.service import Ledger, Posted
from rails.adapter import RailResponse, RailSubmission, next_attempt_delay_ms
from rails.bank_details import validate_bank_details
from rails.corridors import Rail
from rails.iso20022 import PayoutInstruction, build_pacs008

# Transfers a pass claims and drives together, and the most a caller may ask for.
claim_batch_size = 1_000
claim_batch_size_max = 8_000
platform_name = "Kovra Payments Ltd"
platform_bic = "KOVRGB2LXXX"
rail_down_retry_seconds = 30
# When a transfer's step failed for an unexpected reason, how long until it is tried again
# (instead of its claim's whole lease, `KOVRA_TRANSFER_LEASE_SECONDS`).
failed_step_retry_seconds = 5
log = structlog.get_logger("kovra.worker")


# A transfer of the pass with its rail's answer (None: not sent, as when voiding a cancelled
# one).
Answered = tuple[TransferRow, RailResponse | None]


class RailBatches(Protocol):
    """The rails as the lifecycle sees them (`CorridorRouter`): one call for a batch, one
    answer per submission in order, None where that submission's rail is unavailable."""

    async def submit_batch(
        self, submissions: Sequence[RailSubmission]
    ) -> list[RailResponse | None]: ...


@dataclass(frozen=True, kw_only=True)
class Lifecycle:
    """What driving transfers through their rail needs, and nothing else."""

    pool: asyncpg.Pool
    ledger: Ledger
    recipients: Recipients
    pending_rail_base_ms: int
    lease_seconds: int  # How long a pass holds what it claims.


def _now() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.UTC)


async def process_due(
    lifecycle: Lifecycle, rail: RailBatches, *, limit: int = claim_batch_size
) -> int:
    """One pass over up to `limit` due transfers, each driven one step; returns how many."""
    ensure(0 < limit <= claim_batch_size_max, f"a pass claims 1 to {claim_batch_size_max}")
    rows = await claim_for_submission(
        lifecycle.pool, limit=limit, lease_seconds=lifecycle.lease_seconds
    )
    if not rows:
        return 0
    moves: list[Move] = []
    failed: list[TransferRow] = []
    ending = [row for row in rows if row.status in ("cancelled", "blocked")]
    sending = [row for row in rows if row.status == "submitted"]
    ensure(len(ending) + len(sending) == len(rows), "a claimed transfer is sent or ended")
    for step, batch in ((_end, ending), (_send, sending)):
        if not batch:
            continue
        try:
            step_moves, step_failed = await step(lifecycle, rail, batch)
        except Exception as error:  # The step's dependency failed for the whole batch.
            log.error("transfer_batch_step_failed", step=step.__name__, error=repr(error))
            step_moves, step_failed = [], batch
        moves.extend(step_moves)
        failed.extend(step_failed)
    await transition_many(lifecycle.pool, moves)
    if failed:
        # Mostly a dependency that blinked (Redis, the ledger, a lost connection): try again
        # soon, not after the whole lease; never later than the lease itself would have let
        # it be taken up again. Were Postgres itself down, this fails too and the leases
        # simply run out.
        retry_seconds = min(failed_step_retry_seconds, lifecycle.lease_seconds)
        await release(lifecycle.pool, failed, after_seconds=retry_seconds)
    return len(rows)


async def _end(
    lifecycle: Lifecycle, _: RailBatches, rows: list[TransferRow]
) -> tuple[list[Move], list[TransferRow]]:
    """Cancelled and blocked transfers: void their holds, then park them for good."""
    outcomes = await Payouts(lifecycle.ledger).abort_many([payout_of(row) for row in rows])
    return _after_ledger(
        [(row, None) for row in rows],
        outcomes,
        step="void",
        move=lambda row, _: Move(
            row=row, to=row.status, expected=(row.status,), next_attempt_at=parked_until
        ),
    )


async def _send(
    lifecycle: Lifecycle, rail: RailBatches, rows: list[TransferRow]
) -> tuple[list[Move], list[TransferRow]]:
    """Record each attempt, send them all, and act on each answer."""
    submissions, failed = await _submissions(lifecycle, rows)
    await record_submissions(lifecycle.pool, submissions)
    answers = await rail.submit_batch(
        [
            RailSubmission(
                transfer_id=s.row.id.int,
                attempt=s.row.attempt,
                rail=Rail(s.row.rail),
                end_to_end_id=payment_end_to_end_id(s.row.id),
                reference=s.row.reference,
                pacs008=s.message,
            )
            for s in submissions
        ]
    )
    ensure(len(answers) == len(submissions), "a rail answers every submission of a batch")
    accepted: list[Answered] = []
    rejected: list[Answered] = []
    moves: list[Move] = []
    for submission, answer in zip(submissions, answers, strict=True):
        row = submission.row
        if answer is None:  # Its rail is unavailable: try again later, as it is.
            later = _now() + datetime.timedelta(seconds=rail_down_retry_seconds)
            moves.append(
                Move(row=row, to=row.status, expected=(row.status,), next_attempt_at=later)
            )
            continue
        match answer.outcome:
            case "accepted":
                accepted.append((row, answer))
            case "rejected":
                rejected.append((row, answer))
            case "no_answer":
                moves.append(_pending_rail(lifecycle, row))
            case unexpected:
                raise InvariantViolation(f"a rail answered {unexpected!r}")
    completed, completing_failed = await _complete(lifecycle, accepted)
    refunded, refunding_failed = await _refund(lifecycle, rejected)
    return [*moves, *completed, *refunded], [*failed, *completing_failed, *refunding_failed]


async def _submissions(
    lifecycle: Lifecycle, rows: list[TransferRow]
) -> tuple[list[Submission], list[TransferRow]]:
    """Each transfer's pacs.008 for its attempt, with its recipient read for the whole
    batch at once; a transfer whose recipient cannot be found fails its step."""
    recipients = await lifecycle.recipients.load_many(
        [(row.tenant_id, row.compliance_region, row.recipient_id.int) for row in rows]
    )
    created_at = _now()
    submissions: list[Submission] = []
    failed: list[TransferRow] = []
    for row in rows:
        recipient = recipients.get((row.tenant_id, row.recipient_id.int))
        if recipient is None:
            log.error("transfer_recipient_missing", transfer_id=str(row.id))
            failed.append(row)
            continue
        message = _pacs008(lifecycle, row, recipient, created_at=created_at)
        event = Event(
            id=event_id(row.id, "transfer.submitted", row.attempt),
            type="transfer.submitted",
            payload=event_payload(row, "submitted"),
        )
        submissions.append(Submission(row=row, message=message, event=event))
    return submissions, failed


def payment_end_to_end_id(transfer_id: uuid.UUID) -> str:
    """The payment's end-to-end id: the transfer's, the same for every attempt and in
    whichever message carries it (a pacs.008, a batch's pain.001)."""
    return f"KVR{transfer_id.hex[:32]}"


def payment_uetr(transfer_id: uuid.UUID) -> uuid.UUID:
    """The payment's UETR: the transfer's, the same for every attempt and in whichever
    message carries it."""
    return uuid.UUID(int=transfer_id.int, version=4)


def _pacs008(
    lifecycle: Lifecycle,
    row: TransferRow,
    recipient: RecipientRecord,
    *,
    created_at: datetime.datetime,
) -> bytes:
    currency = lifecycle.ledger.currencies.get(row.target_currency)
    return build_pacs008(
        PayoutInstruction(
            message_id=f"KVR{row.id.hex[:24]}{row.attempt:04d}",
            end_to_end_id=payment_end_to_end_id(row.id),
            uetr=payment_uetr(row.id),
            rail=Rail(row.rail),
            currency=row.target_currency,
            amount_minor=row.target_amount_minor,
            minor_units=currency.minor_units,
            debtor_name=platform_name,
            debtor_agent_bic=platform_bic,
            creditor_name=recipient.name,
            creditor_details=validate_bank_details(
                country=recipient.country, details=recipient.bank_details
            ),
            reference=row.reference,
            created_at=created_at,
        )
    )


def _after_ledger(
    answered: Sequence[Answered],
    outcomes: Sequence[Posted | LedgerError],
    *,
    step: str,
    move: Callable[[TransferRow, RailResponse | None], Move],
) -> tuple[list[Move], list[TransferRow]]:
    """The move of each transfer whose ledger step succeeded; the others fail their step
    (tried again soon), each named in the log."""
    moves: list[Move] = []
    failed: list[TransferRow] = []
    for (row, answer), outcome in zip(answered, outcomes, strict=True):
        if isinstance(outcome, LedgerError):
            log.error(
                "transfer_ledger_step_failed",
                step=step,
                transfer_id=str(row.id),
                error=repr(outcome),
            )
            failed.append(row)
        else:
            moves.append(move(row, answer))
    return moves, failed


def _inbound(answer: RailResponse | None) -> tuple[tuple[str, str, bytes], ...]:
    """The status report received with an answer, stored with the move it leads to."""
    if answer is None or answer.pacs002 is None:
        return ()
    return (("pacs.002", "inbound", answer.pacs002),)


async def _complete(
    lifecycle: Lifecycle, accepted: list[Answered]
) -> tuple[list[Move], list[TransferRow]]:
    """The rail paid: commit and settle every payout (one ledger request per step), then
    `completed` for each whose ledger steps succeeded."""
    if not accepted:
        return [], []
    outcomes = await Payouts(lifecycle.ledger).commit_and_settle_many(
        [payout_of(row) for row, _ in accepted]
    )
    return _after_ledger(accepted, outcomes, step="settle", move=_completed)


def _completed(row: TransferRow, answer: RailResponse | None) -> Move:
    return Move(
        row=row,
        to="completed",
        expected=("submitted",),
        next_attempt_at=parked_until,
        events=(
            Event(
                id=event_id(row.id, "transfer.completed"),
                type="transfer.completed",
                payload=event_payload(row, "completed"),
            ),
        ),
        messages=_inbound(answer),
    )


async def _refund(
    lifecycle: Lifecycle, rejected: list[Answered]
) -> tuple[list[Move], list[TransferRow]]:
    """The rail refused: void every held leg, so the wallet is whole to the minor unit."""
    if not rejected:
        return [], []
    outcomes = await Payouts(lifecycle.ledger).abort_many([payout_of(row) for row, _ in rejected])
    return _after_ledger(rejected, outcomes, step="refund", move=_refunded)


def _refunded(row: TransferRow, answer: RailResponse | None) -> Move:
    reason = (answer.reason_code if answer is not None else None) or "NARR"
    return Move(
        row=row,
        to="refunded",
        expected=("submitted",),
        failure_code=reason,
        next_attempt_at=parked_until,
        messages=_inbound(answer),
        events=tuple(
            Event(
                id=event_id(row.id, f"transfer.{status}"),
                type=f"transfer.{status}",
                payload=event_payload(row, status) | {"failure_code": reason},
            )
            for status in ("rail_rejected", "refunded")
        ),
    )


def _pending_rail(lifecycle: Lifecycle, row: TransferRow) -> Move:
    delay = datetime.timedelta(
        milliseconds=next_attempt_delay_ms(row.attempt, base_ms=lifecycle.pending_rail_base_ms)
    )
    return Move(
        row=row,
        to="pending_rail",
        expected=("submitted",),
        next_attempt_at=_now() + delay,
        events=(
            Event(
                id=event_id(row.id, "transfer.pending_rail", row.attempt),
                type="transfer.pending_rail",
                payload=event_payload(row, "pending_rail"),
            ),
        ),
    )


async def run_forever(lifecycle: Lifecycle, rail: RailBatches, *, idle_seconds: float) -> None:
    """Drive transfers until cancelled; sleep only when a pass found nothing to do."""
    while True:
        try:
            worked = await process_due(lifecycle, rail)
        except Exception:
            log.exception("transfer_pass_failed")
            worked = 0
        if worked == 0:
            await asyncio.sleep(idle_seconds)
