"""Creating and cancelling transfers: the request path of the lifecycle (SPEC §6).

Creating holds the funds with the payout's linked chain and answers `processing`; nothing
else happens on the request path. Its steps never read Postgres: one Redis script admits
the transfer (`gateway.transfers.admission`: the recipient is active, the quote is used by
this transfer only, the daily limit is counted), compliance decides in-process, the ledger
reserves every leg at once, and only then are the transfer row and its
`transfer.processing` event written, together, in one batched transaction (a retry whose
payout an earlier attempt reserved writes in a transaction of its own, to learn whether its
row went in). A refusal (no
funds, no liquidity, an expired or used quote, an unknown recipient) creates nothing and
holds nothing; a quote and a count taken for a transfer refused later are given back."""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import uuid
from typing import Any

import asyncpg
import msgspec

from compliance.audit.chain import append as audit_append
from compliance.audit.chain import normalise_details
from compliance.audit.outbox import outbox_insert, outbox_row_normalised
from compliance.cases.records import case_insert
from compliance.decisions import ComplianceCheck, Decision, PayoutFacts
from compliance.errors import ComplianceBlocked
from compliance.limits import DailyLimits
from fx.quotes import LockedQuote, QuoteStore
from gateway.http.ids import as_uuid, decode_id, encode_id, uuid_from_bytes
from gateway.http.ratelimit import Principal
from gateway.http.wire import Money
from gateway.infra.database.batch import BatchStatement, BatchWriter, WriterOverloaded
from gateway.tenancy.pricing_cache import PricingCache, TenantTerms
from gateway.transfers import wire
from gateway.transfers.admission import AdmissionDependencies, Admitted, admit
from gateway.transfers.errors import TransferNotCancellable, TransferNotRecorded
from gateway.transfers.recipients import RecipientRecord
from gateway.transfers.records import (
    Event,
    Move,
    TransferRow,
    get_transfer,
    park,
    parked_until,
    transfer_insert,
    transition,
)
from gateway.webhooks.records.events import event_insert
from ledger.errors import DomainError, ReservationReleased
from ledger.invariants import ensure
from ledger.payouts import Payout, Payouts
from ledger.service import Ledger
from rails.corridors import choose_rail, corridor_for

# Distinct (tenant, score, reasons) whose audit details stay encoded (`_decision_details`).
decision_details_cached_max = 4_096


def event_id(transfer_id: uuid.UUID, kind: str, attempt: int = 0) -> uuid.UUID:
    """The same event of the same transfer always gets the same id (crash retries)."""
    digest = hashlib.blake2b(
        f"{transfer_id}:{kind}:{attempt}".encode(), digest_size=16, person=b"kovra.event"
    ).digest()
    return uuid_from_bytes(digest)


def payout_of(row: TransferRow) -> Payout:
    return Payout(
        payout_id=row.id.int,
        tenant_id=row.tenant_id,
        source_currency=row.source_currency,
        source_amount_minor=row.source_amount_minor,
        fee_minor=row.fee_minor,
        target_currency=row.target_currency,
        target_amount_minor=row.target_amount_minor,
        netted=row.batch_id is not None,
    )


def transfer_view(row: TransferRow) -> wire.Transfer:
    return wire.Transfer(
        id=encode_id("tr", row.id.int),
        status=row.status,  # type: ignore[arg-type]
        quote_id=encode_id("quote", row.quote_id.int),
        recipient_id=encode_id("rcp", row.recipient_id.int),
        reference=row.reference,
        source=Money(amount=row.source_amount_minor, currency=row.source_currency),
        fee=Money(amount=row.fee_minor, currency=row.source_currency),
        target=Money(amount=row.target_amount_minor, currency=row.target_currency),
        rate=row.rate,
        rail=row.rail,
        failure_code=row.failure_code,
        created_at=row.created_at,
        updated_at=row.updated_at,
        batch_id=None if row.batch_id is None else encode_id("batch", row.batch_id.int),
    )


class Transfers:
    """Creating and cancelling transfers, with exactly what the request path needs."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        writer: BatchWriter,
        ledger: Ledger,
        admission: AdmissionDependencies,
        compliance: ComplianceCheck,
        limits: DailyLimits,
        pricing: PricingCache,
        quotes: QuoteStore,
    ) -> None:
        self._pool = pool
        self._writer = writer
        self._payouts = Payouts(ledger)
        self._admission = admission
        self._compliance = compliance
        self._limits = limits
        self._pricing = pricing
        self._quotes = quotes

    async def create(
        self,
        principal: Principal,
        *,
        transfer_id: int,
        body: wire.TransferCreate,
        retry_reuses_id: bool,
    ) -> wire.Transfer:
        """Admit, screen, hold and record one payout. `retry_reuses_id` says the request carries
        an Idempotency-Key, so a retry comes back to this very `transfer_id`."""
        quote_id = decode_id("quote", body.quote_id)
        recipient_id = decode_id("rcp", body.recipient_id)
        terms = await self._pricing.terms(principal.tenant_id)
        # One Redis script: the recipient, the quote (now used by this transfer) and the daily
        # limit (counted once, even on a retry). A refusal there has changed nothing.
        admitted = await admit(
            self._admission,
            principal,
            transfer_id=transfer_id,
            quote_id=quote_id,
            recipient_id=recipient_id,
            daily_limit_usd_minor=terms.daily_limit_usd_minor,
        )
        quote = admitted.quote
        try:
            rail = _rail(quote, recipient=admitted.recipient)
            decision = await self._compliance.check(_payout_facts(principal, terms, admitted))
            if decision.outcome == "block":
                await audit_append(
                    self._pool,
                    actor="compliance",
                    action="compliance.block",
                    target=f"transfer:{uuid.UUID(int=transfer_id)}",
                    details=_block_details(principal.tenant_id, decision),
                )
                raise ComplianceBlocked("compliance refused this payout; it moved no money")
            payout = payout_for(quote, tenant_id=principal.tenant_id, transfer_id=transfer_id)
            reserved = await self._payouts.reserve(payout)
        except DomainError:
            await self._give_back(
                principal, admitted=admitted, quote_id=quote_id, transfer_id=transfer_id
            )
            raise
        try:
            return await self._record(
                principal,
                transfer_id=transfer_id,
                quote=quote,
                recipient_id=recipient_id,
                reference=body.reference,
                rail=rail,
                decision=decision,
                retried=reserved.existed,
            )
        except (asyncpg.PostgresError, WriterOverloaded) as error:
            # Postgres refused the row, or the writer shed it before sending it: nothing of it
            # was committed. With an Idempotency-Key the retry reuses this transfer id and must
            # find the hold and the count in place (a voided hold can never be held again under
            # the same id). Without one, no request can come back to this id: the hold, the
            # count and the quote go back now rather than the hold after the reconciler's delay
            # and the count never. A connection lost mid-write is unknown, and is left as it is.
            if not retry_reuses_id:
                await self._payouts.abort(payout)
                await self._give_back(
                    principal, admitted=admitted, quote_id=quote_id, transfer_id=transfer_id
                )
            if isinstance(error, WriterOverloaded):
                raise _shed() from error
            raise

    async def _give_back(
        self,
        principal: Principal,
        *,
        admitted: Admitted,
        quote_id: int,
        transfer_id: int,
    ) -> None:
        """Return what the admission took: the daily-limit count, then the quote."""
        # The count first: a quote freed while it still carried this count would let the next
        # payer of the quote inherit the count and not be counted at all.
        await self._limits.give_back(
            tenant_id=principal.tenant_id, usage=admitted.usage, once=admitted.counted
        )
        await self._quotes.release(
            tenant_id=principal.tenant_id, quote_id=quote_id, consumer_id=transfer_id
        )

    async def _record(
        self,
        principal: Principal,
        *,
        transfer_id: int,
        quote: LockedQuote,
        recipient_id: int,
        reference: str,
        rail: str,
        decision: Decision,
        retried: bool,
    ) -> wire.Transfer:
        """The row, its first event and (under review) its case, in one transaction. `retried`
        says an earlier attempt had reserved the payout already (`_record_retried`)."""
        status = "in_review" if decision.outcome == "review" else "processing"
        created = _new_row(
            principal,
            transfer_id=transfer_id,
            quote=quote,
            recipient_id=recipient_id,
            reference=reference,
            rail=rail,
            status=status,
        )
        view = transfer_view(created)
        rows: list[tuple[BatchStatement, tuple[Any, ...]]] = [
            (transfer_insert, _insert_values(created)),
            (event_insert, _first_event_values(created, view)),
        ]
        if status == "in_review":
            rows.append((case_insert, _case_values(created, decision)))
        rows.append((outbox_insert, _decision_record(created.id, principal.tenant_id, decision)))
        if retried:
            return await self._record_retried(principal, rows, view=view)
        await self._writer.write_together(rows)
        return view

    async def _record_retried(
        self,
        principal: Principal,
        rows: list[tuple[BatchStatement, tuple[Any, ...]]],
        *,
        view: wire.Transfer,
    ) -> wire.Transfer:
        """Write a retried transfer's rows in a transaction of its own, learning whether its row
        went in: the batched write cannot tell, since a row already there is skipped silently.

        Its payout was reserved by an earlier attempt, so the id may hold that attempt's row
        (answer with it, as it stands now) or the reconciler's `abandoned` tombstone, written
        just before it voids the reservation (refuse: nothing is recorded, no event is written,
        and the reconciler gives the count and the quote back). Retries are rare; this is the
        one write on the payment path that is not batched.
        """
        (statement, row), *rest = rows
        ensure(statement is transfer_insert, "a transfer's rows start with its own")
        async with self._pool.acquire() as connection, connection.transaction():
            inserted = await connection.fetchval(f"{transfer_insert.sql()} RETURNING id", [row])
            if inserted is not None:
                for other, values in rest:
                    await connection.execute(other.sql(), [values])
                return view
        existing = await get_transfer(
            self._pool,
            region=principal.compliance_region,
            tenant_id=principal.tenant_id,
            transfer_id=row[0],
        )
        if existing is None:
            raise ReservationReleased()
        return transfer_view(existing)

    async def cancel(self, row: TransferRow) -> TransferRow:
        """Cancel before submission: the state first (racing the worker fairly), then the
        ledger; a crash in between is finished by the worker, which voids cancelled holds."""
        cancelling = Move(
            row=row,
            to="cancelled",
            expected=("processing",),
            # Due as it was: were this process to die before the hold is voided, the
            # worker voids it.
            next_attempt_at=row.next_attempt_at,
            events=(
                Event(
                    id=event_id(row.id, "transfer.cancelled"),
                    type="transfer.cancelled",
                    payload=event_payload(row, "cancelled"),
                ),
            ),
        )
        cancelled = await transition(self._pool, cancelling)
        if cancelled is None:
            raise TransferNotCancellable(
                f"the transfer is {row.status}; only processing transfers cancel"
            )
        await self._payouts.abort(payout_of(cancelled))
        await park(self._pool, cancelled, until=parked_until)
        return cancelled


def _shed() -> TransferNotRecorded:
    """The writer shed the row before anything was written: the client should come back
    shortly."""
    return TransferNotRecorded(
        "the database is saturated and the transfer was not recorded; retry shortly"
    )


def _payout_facts(principal: Principal, terms: TenantTerms, admitted: Admitted) -> PayoutFacts:
    """What compliance decides the admitted payout on."""
    quote = admitted.quote
    return PayoutFacts(
        tenant_id=principal.tenant_id,
        tier=terms.tier,
        source_currency=quote.source_currency,
        target_currency=quote.target_currency,
        amount_usd_minor=admitted.usage.usd_minor,
        daily_limit_usd_minor=terms.daily_limit_usd_minor,
        recipient_name=admitted.recipient.name,
        recipient_country=admitted.recipient.country,
        recipient_created_at=admitted.recipient.created_at,
        payouts_last_hour=admitted.usage.payouts_last_hour,
    )


def _block_details(tenant_id: int, decision: Decision) -> dict[str, object]:
    """A block's audit details (written to the chain at once, unlike an approve's)."""
    return {"tenant_id": tenant_id, "score": decision.score, "reasons": decision.reasons}


def _new_row(
    principal: Principal,
    *,
    transfer_id: int,
    quote: LockedQuote,
    recipient_id: int,
    reference: str,
    rail: str,
    status: str,
) -> TransferRow:
    """The transfer as it is first recorded: the quote's amounts, created now."""
    now = datetime.datetime.now(tz=datetime.UTC)
    return TransferRow(
        id=as_uuid(transfer_id),
        compliance_region=principal.compliance_region,
        tenant_id=principal.tenant_id,
        quote_id=as_uuid(quote.id),
        recipient_id=as_uuid(recipient_id),
        reference=reference,
        source_currency=quote.source_currency,
        source_amount_minor=quote.source_amount,
        fee_minor=quote.fee_amount,
        target_currency=quote.target_currency,
        target_amount_minor=quote.target_amount,
        rate=quote.rate,
        rail=rail,
        status=status,
        attempt=0,
        next_attempt_at=now,
        failure_code=None,
        created_at=now,
        updated_at=now,
    )


def _insert_values(row: TransferRow) -> tuple[Any, ...]:
    """The row's values in the order of `transfer_insert`'s columns."""
    return (
        row.id,
        row.compliance_region,
        row.tenant_id,
        row.quote_id,
        row.recipient_id,
        row.reference,
        row.source_currency,
        row.source_amount_minor,
        row.fee_minor,
        row.target_currency,
        row.target_amount_minor,
        row.rate,
        row.rail,
        row.status,
        row.created_at,
        row.updated_at,
    )


def _first_event_values(row: TransferRow, view: wire.Transfer) -> tuple[Any, ...]:
    """The transfer's first event (`transfer.processing` or `transfer.in_review`), for
    `event_insert`."""
    kind = f"transfer.{row.status}"
    return (
        event_id(row.id, kind),
        row.tenant_id,
        kind,
        row.id,
        msgspec.json.encode(view).decode(),
    )


def _case_values(row: TransferRow, decision: Decision) -> tuple[Any, ...]:
    """The compliance case of a transfer under review, for `case_insert`."""
    return (
        event_id(row.id, "case"),
        row.compliance_region,
        row.tenant_id,
        row.id,
        decision.score,
        json.dumps(list(decision.reasons)),
    )


def payout_for(quote: LockedQuote, *, tenant_id: int, transfer_id: int) -> Payout:
    """The payout the tenant's transfer paying `quote` holds in the ledger: the quote's
    amounts, under the transfer's id."""
    return Payout(
        payout_id=transfer_id,
        tenant_id=tenant_id,
        source_currency=quote.source_currency,
        source_amount_minor=quote.source_amount,
        fee_minor=quote.fee_amount,
        target_currency=quote.target_currency,
        target_amount_minor=quote.target_amount,
    )


def _rail(quote: LockedQuote, *, recipient: RecipientRecord) -> str:
    """The rail for the payout (the admission checked the currencies agree; the corridor
    was checked when the recipient was created, and is again in case it was withdrawn)."""
    ensure(quote.target_currency == recipient.currency, "the quote pays the recipient's currency")
    corridor = corridor_for(country=recipient.country, currency=recipient.currency)
    return choose_rail(corridor, amount_minor=quote.target_amount).value


def _decision_record(
    transfer_id: uuid.UUID, tenant_id: int, decision: Decision
) -> tuple[uuid.UUID, str, str, str, str]:
    """The audit record of an approve or review, written with the transfer it is about and
    chained later by `compliance.audit.outbox` (a block writes its record at once)."""
    return outbox_row_normalised(
        record_id=event_id(transfer_id, "audit.compliance"),
        actor="compliance",
        action=f"compliance.{decision.outcome}",
        target=f"transfer:{transfer_id}",
        details_json=_decision_details(tenant_id, decision.score, decision.reasons),
    )


@functools.lru_cache(maxsize=decision_details_cached_max)
def _decision_details(tenant_id: int, score: int, reasons: tuple[str, ...]) -> str:
    """A decision's audit details as canonical JSON, encoded once per (tenant, score,
    reasons) rather than once per transfer: one tenant's payouts mostly score alike."""
    _, encoded = normalise_details({"tenant_id": tenant_id, "score": score, "reasons": reasons})
    return encoded.decode("utf-8")


def event_payload(row: TransferRow, status: str) -> dict[str, Any]:
    view = transfer_view(msgspec.structs.replace(row, status=status))
    payload: dict[str, Any] = msgspec.to_builtins(view)
    return payload
