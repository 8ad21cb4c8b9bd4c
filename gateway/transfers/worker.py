"""The lifecycle worker: submits transfers to their rail and acts on what the rail says.

processing → submitted (pacs.008 recorded, then sent) → completed (ledger committed and
settled); a rejection voids the hold (rail_rejected → refunded, the wallet whole to the
minor unit); no answer → pending_rail, retried later with backoff and jitter; a cancelled
transfer's hold is voided. Each step writes the ledger first where money moves (idempotent:
ids derive from the transfer) and then the state with its events in one transaction, so a
worker killed at any instant leaves work the next pass finishes exactly once. Rows are
leased (`claim_due`), so several workers never drive the same transfer at once.

A worker killed after sending a pacs.008 and before recording the answer leaves the
transfer `submitted`; the next pass sends it again as a new attempt (a new message id) of
the same payment: its UETR and end-to-end id derive from the transfer, never from the
attempt, so the rail, which remembers what it received (`rails.memory`), answers it as the
first time and pays nothing twice.
"""

from __future__ import annotations

import asyncio
import datetime
import uuid
from dataclasses import dataclass

import asyncpg
import structlog

from gateway.transfers.recipients import Recipients
from gateway.transfers.records import (
    Event,
    TransferRow,
    claim_due,
    park,
    parked_until,
    release,
    transition,
)
from gateway.transfers.service import event_id, event_payload, payout_of
from ledger.payouts import Payouts
from ledger.service import Ledger
from rails.adapter import RailAdapter, RailSubmission, RailUnavailable, next_attempt_delay_ms
from rails.bank_details import validate_bank_details
from rails.corridors import Rail
from rails.iso20022 import PayoutInstruction, build_pacs008

claim_batch_size = 100
platform_name = "Kovra Payments Ltd"
platform_bic = "KOVRGB2LXXX"
rail_down_retry_seconds = 30
# When a transfer's step failed for an unexpected reason, how long until it is tried again
# (instead of its claim's whole lease, `KOVRA_TRANSFER_LEASE_SECONDS`).
failed_step_retry_seconds = 5
log = structlog.get_logger("kovra.worker")


@dataclass(frozen=True, kw_only=True)
class Lifecycle:
    """What driving transfers through their rail needs, and nothing else."""

    pool: asyncpg.Pool
    ledger: Ledger
    recipients: Recipients
    pending_rail_base_ms: int
    lease_seconds: int  # How long a pass holds the transfers it claims (`claim_due`).


def _now() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.UTC)


async def process_due(
    lifecycle: Lifecycle, rail: RailAdapter, *, limit: int = claim_batch_size
) -> int:
    """One pass: lease due transfers and drive each one step; returns how many."""
    rows = await claim_due(lifecycle.pool, limit=limit, lease_seconds=lifecycle.lease_seconds)
    results = await asyncio.gather(
        *(_drive(lifecycle, rail, row) for row in rows), return_exceptions=True
    )
    failed = []
    for row, result in zip(rows, results, strict=True):
        if isinstance(result, BaseException):
            log.error("transfer_step_failed", transfer_id=str(row.id), error=repr(result))
            failed.append(row)
    if failed:
        # Mostly a dependency that blinked (Redis, the ledger, a lost connection): try again
        # soon, not after the whole lease. Were Postgres itself down, this fails too and the
        # leases simply run out.
        # Never later than the lease itself would have let it be taken up again.
        retry_seconds = min(failed_step_retry_seconds, lifecycle.lease_seconds)
        await release(lifecycle.pool, failed, after_seconds=retry_seconds)
    return len(rows)


async def _drive(lifecycle: Lifecycle, rail: RailAdapter, row: TransferRow) -> None:
    if row.status in ("cancelled", "blocked"):
        await Payouts(lifecycle.ledger).abort(payout_of(row))
        await park(lifecycle.pool, row, until=parked_until)
        return
    submitted = await _mark_submitted(lifecycle, row)
    if submitted is None:
        return  # Cancelled or moved on by someone else meanwhile.
    instruction, message = submitted
    try:
        response = await rail.submit(
            RailSubmission(
                transfer_id=instruction.id.int,
                attempt=instruction.attempt,
                rail=Rail(instruction.rail),
                end_to_end_id=payment_end_to_end_id(instruction.id),
                reference=instruction.reference,
                pacs008=message,
            )
        )
    except RailUnavailable:
        await park(
            lifecycle.pool,
            instruction,
            until=_now() + datetime.timedelta(seconds=rail_down_retry_seconds),
        )
        return
    inbound = [("pacs.002", "inbound", response.pacs002)] if response.pacs002 else []
    match response.outcome:
        case "accepted":
            await _complete(lifecycle, instruction, inbound)
        case "rejected":
            await _refund(lifecycle, instruction, response.reason_code or "NARR", inbound)
        case "no_answer":
            await _pending_rail(lifecycle, instruction)


def payment_end_to_end_id(transfer_id: uuid.UUID) -> str:
    """The payment's end-to-end id: the transfer's, the same for every attempt and in
    whichever message carries it (a pacs.008, a batch's pain.001)."""
    return f"KVR{transfer_id.hex[:32]}"


def payment_uetr(transfer_id: uuid.UUID) -> uuid.UUID:
    """The payment's UETR: the transfer's, the same for every attempt and in whichever
    message carries it."""
    return uuid.UUID(int=transfer_id.int, version=4)


async def _mark_submitted(
    lifecycle: Lifecycle, row: TransferRow
) -> tuple[TransferRow, bytes] | None:
    """Record the attempt and its pacs.008 before sending, so a crash re-sends the same."""
    attempt = row.attempt + 1
    message = await _pacs008(lifecycle, row, attempt)
    events = (
        []
        if row.status == "submitted"
        else [
            Event(
                id=event_id(row.id, "transfer.submitted", attempt),
                type="transfer.submitted",
                payload=event_payload(row, "submitted"),
            )
        ]
    )
    moved = await transition(
        lifecycle.pool,
        row,
        to="submitted",
        expected=("processing", "submitted", "pending_rail"),
        events=events,
        attempt=attempt,
        messages=[("pacs.008", "outbound", message)],
    )
    return None if moved is None else (moved, message)


async def _pacs008(lifecycle: Lifecycle, row: TransferRow, attempt: int) -> bytes:
    recipient = await lifecycle.recipients.load(
        tenant_id=row.tenant_id,
        region=row.compliance_region,
        recipient_id=row.recipient_id.int,
    )
    if recipient is None:
        raise LookupError(f"transfer {row.id} names a recipient that does not exist")
    currency = lifecycle.ledger.currencies.get(row.target_currency)
    return build_pacs008(
        PayoutInstruction(
            message_id=f"KVR{row.id.hex[:24]}{attempt:04d}",
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
            created_at=_now(),
        )
    )


async def _complete(
    lifecycle: Lifecycle, row: TransferRow, inbound: list[tuple[str, str, bytes]]
) -> None:
    payouts = Payouts(lifecycle.ledger)
    await payouts.commit(payout_of(row))
    await payouts.settle(payout_of(row))
    await transition(
        lifecycle.pool,
        row,
        to="completed",
        expected=("submitted",),
        next_attempt_at=parked_until,
        events=[
            Event(
                id=event_id(row.id, "transfer.completed"),
                type="transfer.completed",
                payload=event_payload(row, "completed"),
            )
        ],
        messages=inbound,
    )


async def _refund(
    lifecycle: Lifecycle, row: TransferRow, reason: str, inbound: list[tuple[str, str, bytes]]
) -> None:
    """The rail refused: void every held leg, so the wallet is whole to the minor unit."""
    await Payouts(lifecycle.ledger).abort(payout_of(row))
    await transition(
        lifecycle.pool,
        row,
        to="refunded",
        expected=("submitted",),
        failure_code=reason,
        next_attempt_at=parked_until,
        messages=inbound,
        events=[
            Event(
                id=event_id(row.id, "transfer.rail_rejected"),
                type="transfer.rail_rejected",
                payload=event_payload(row, "rail_rejected") | {"failure_code": reason},
            ),
            Event(
                id=event_id(row.id, "transfer.refunded"),
                type="transfer.refunded",
                payload=event_payload(row, "refunded") | {"failure_code": reason},
            ),
        ],
    )


async def _pending_rail(lifecycle: Lifecycle, row: TransferRow) -> None:
    delay = datetime.timedelta(
        milliseconds=next_attempt_delay_ms(row.attempt, base_ms=lifecycle.pending_rail_base_ms)
    )
    await transition(
        lifecycle.pool,
        row,
        to="pending_rail",
        expected=("submitted",),
        next_attempt_at=_now() + delay,
        events=[
            Event(
                id=event_id(row.id, "transfer.pending_rail", row.attempt),
                type="transfer.pending_rail",
                payload=event_payload(row, "pending_rail"),
            )
        ],
    )


async def run_forever(lifecycle: Lifecycle, rail: RailAdapter, *, idle_seconds: float) -> None:
    """Drive transfers until cancelled; sleep only when a pass found nothing to do."""
    while True:
        try:
            worked = await process_due(lifecycle, rail)
        except Exception:
            log.exception("transfer_pass_failed")
            worked = 0
        if worked == 0:
            await asyncio.sleep(idle_seconds)
