"""Wallets: deposits (sandbox), two-phase holds, balances and statements, and the platform's
liquidity.

Each create writes its intent row to Postgres (batched with concurrent requests) and then
moves money in TigerBeetle with ids derived from the object's id, so a retry never moves
money twice. Capture and void read only TigerBeetle to move money: the hold's ledger
transfer says which tenant and currency it belongs to. Balances and statements are read
from TigerBeetle alone.
"""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import asyncpg
import msgspec
import tigerbeetle as tb

from compliance.audit.chain import record_admin_action
from gateway.http.ids import as_uuid, encode_id, utc_from_ns
from gateway.http.paging import PageRequest, keyset_page
from gateway.http.ratelimit import Principal
from gateway.infra.database.batch import BatchStatement, BatchWriter
from gateway.wallets import wire
from gateway.wallets.errors import DepositsSandboxOnly, HoldUnknown
from gateway.wallets.records import HoldRow, deposit_insert, get_hold, hold_insert, mark_rejected
from gateway.webhooks.records.events import event_insert
from ledger.clients import LedgerClient
from ledger.errors import LedgerError
from ledger.service import Ledger, Posted
from ledger.statements import StatementEntry, Statements
from ledger.transfers import Leg, new_object_id, transfer_id

HoldStatus = Literal["pending", "captured", "voided", "expired"]
# The API id of the object behind each kind of wallet entry (the transfer's user_data_128),
# so a statement line joins to the object the tenant knows: a payout's legs and refunds, and a
# batch item's return, to the transfer (`tr_`); a batch's pair legs and their reversal to the
# batch.
_object_prefixes = {
    "deposit": "dep",
    "hold": "hold",
    "liquidity_funding": "fund",
    # Money from the bank: the statement entry that brought it (`gateway.funding`).
    # (A suspense credit never reaches a wallet; its line would name the entry too.)
    "funding_credit": "bke",
    "suspense_credit": "bke",
    "suspense_release": "bke",
    "payout_source": "tr",
    "payout_fee": "tr",
    "payout_target": "tr",
    "payout_settlement": "tr",
    "refund_source": "tr",
    "refund_fee": "tr",
    "refund_target": "tr",
    "batch_source": "batch",
    "batch_fee": "batch",
    "batch_target": "batch",
    "batch_reversal": "batch",
    "batch_item_source": "tr",
    "batch_item_fee": "tr",
    "batch_item_return": "tr",
    "batch_item_target_return": "tr",
    # Money in under a mandate: the collection (`gateway.collections`).
    "collection_credit": "col",
    "collection_return": "col",
    "collection_return_shortfall": "col",
    # Automation: a run's allocation into a customer's buckets (`gateway.orchestrations`),
    # and a bucket's delivery to its partner (the partner order).
    "bucket_allocation": "orc",
    "partner_delivery": "ord",
}


class Wallets:
    """The wallet operations of the tenant API and the platform's liquidity funding."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        ledger_client: LedgerClient,
        statements: Statements,
        pool: asyncpg.Pool,
        writer: BatchWriter,
        sandbox: bool,
    ) -> None:
        self._ledger = ledger
        self._ledger_client = ledger_client
        self._statements = statements
        self._pool = pool
        self._writer = writer
        self._sandbox = sandbox

    def ensure_deposits_enabled(self) -> None:
        """Deposits are the sandbox's stand-in for a bank transfer in; elsewhere they do
        not exist."""
        if not self._sandbox:
            raise DepositsSandboxOnly("deposits exist only in the sandbox")

    async def deposit(
        self, principal: Principal, *, deposit_id: int, body: wire.DepositCreate
    ) -> wire.Deposit:
        """Credit the tenant's wallet. The caller checked that deposits are enabled and that
        the tenant is active (`compliance.freezes.service.ensure_active`)."""
        self.ensure_deposits_enabled()
        currency = self._ledger.currencies.get(body.currency)
        row = (
            as_uuid(deposit_id),
            principal.compliance_region,
            principal.tenant_id,
            currency.code,
            body.amount,
            body.reference,
        )
        posted = await self._record_then_move(
            statement=deposit_insert,
            row=row,
            region=principal.compliance_region,
            move=lambda: self._ledger.deposit(
                tenant_id=principal.tenant_id,
                deposit_id=deposit_id,
                currency_code=currency.code,
                amount_minor=body.amount,
            ),
        )
        deposit = wire.Deposit(
            id=encode_id("dep", deposit_id),
            currency=currency.code,
            amount=body.amount,
            reference=body.reference,
            status="posted",
            created_at=utc_from_ns(posted.timestamp_ns),
        )
        await self._event(
            event_id=posted.transfer_id,
            tenant_id=principal.tenant_id,
            event_type="deposit.posted",
            object_id=deposit_id,
            payload=deposit,
        )
        return deposit

    async def hold(self, principal: Principal, *, hold_id: int, body: wire.HoldCreate) -> wire.Hold:
        """Hold funds on the wallet: one pending ledger transfer, optionally timing out. The
        caller checked that the tenant is active."""
        currency = self._ledger.currencies.get(body.currency)
        row = (
            as_uuid(hold_id),
            principal.compliance_region,
            principal.tenant_id,
            currency.code,
            body.amount,
            body.timeout_seconds,
            body.reference,
        )
        posted = await self._record_then_move(
            statement=hold_insert,
            row=row,
            region=principal.compliance_region,
            move=lambda: self._ledger.hold(
                tenant_id=principal.tenant_id,
                hold_id=hold_id,
                currency_code=currency.code,
                amount_minor=body.amount,
                timeout_seconds=body.timeout_seconds,
            ),
        )
        created_at = utc_from_ns(posted.timestamp_ns)
        hold = wire.Hold(
            id=encode_id("hold", hold_id),
            currency=currency.code,
            amount=body.amount,
            captured_amount=0,
            status="pending",
            timeout_seconds=body.timeout_seconds,
            expires_at=_expiry(created_at, body.timeout_seconds),
            reference=body.reference,
            created_at=created_at,
        )
        await self._event(
            event_id=posted.transfer_id,
            tenant_id=principal.tenant_id,
            event_type="hold.created",
            object_id=hold_id,
            payload=hold,
        )
        return hold

    async def resolve_hold(
        self, principal: Principal, *, hold_id: int, capture: bool, amount_minor: int | None
    ) -> wire.Hold:
        """Capture the hold (all of it, or `amount_minor`) or void it. The caller checked
        that the tenant is active."""
        pending = await self._pending_transfer(principal.tenant_id, hold_id)
        currency = self._ledger.currencies.by_number(pending.ledger).code
        if capture:
            posted = await self._ledger.capture_hold(
                tenant_id=principal.tenant_id,
                hold_id=hold_id,
                currency_code=currency,
                amount_minor=amount_minor,
            )
        else:
            posted = await self._ledger.void_hold(
                tenant_id=principal.tenant_id, hold_id=hold_id, currency_code=currency
            )
        row = await self._hold_row(principal, hold_id)
        # A replay with the same id can only have posted the same amount (else: a conflict).
        captured = (pending.amount if amount_minor is None else amount_minor) if capture else None
        hold = _hold_view(hold_id, row, pending, captured_amount=captured, voided=not capture)
        await self._event(
            event_id=posted.transfer_id,
            tenant_id=principal.tenant_id,
            event_type="hold.captured" if capture else "hold.voided",
            object_id=hold_id,
            payload=hold,
        )
        return hold

    async def read_hold(self, principal: Principal, hold_id: int) -> wire.Hold:
        """The hold as it stands: its metadata from Postgres, its state from the ledger."""
        row = await self._hold_row(principal, hold_id)
        ids = [
            transfer_id(object_id=hold_id, leg=leg)
            for leg in (Leg.HOLD, Leg.HOLD_CAPTURE, Leg.HOLD_VOID)
        ]
        by_id = {t.id: t for t in await self._ledger_client.lookup_transfers(ids)}
        pending = by_id.get(ids[0])
        if pending is None or pending.user_data_64 != principal.tenant_id:
            raise HoldUnknown(f"no hold {encode_id('hold', hold_id)}")
        captured = by_id.get(ids[1])
        return _hold_view(
            hold_id,
            row,
            pending,
            captured_amount=captured.amount if captured else None,
            voided=ids[2] in by_id,
        )

    async def balances(self, tenant_id: int) -> wire.BalanceList:
        balances = await self._statements.balances(tenant_id)
        return wire.BalanceList(
            data=[
                wire.Balance(
                    currency=b.currency, available=b.available, pending=b.pending, posted=b.posted
                )
                for b in balances
            ]
        )

    async def statement(
        self, tenant_id: int, *, currency: str, page: PageRequest[int]
    ) -> wire.StatementPage:
        """A page of the wallet's ledger history in `currency`. Its cursor is the ledger
        timestamp (ns) of the last transfer of the page before: TigerBeetle keeps the order."""
        currency_code = self._ledger.currencies.get(currency).code
        statement = await self._statements.statement(
            tenant_id=tenant_id,
            currency_code=currency_code,
            limit=page.limit,
            after_ns=page.cursor or 0,
        )
        entries = keyset_page(statement.entries, page, key=lambda entry: entry.timestamp_ns)
        return wire.StatementPage(
            data=[statement_entry(entry, currency_code) for entry in entries.items],
            next_cursor=entries.next_cursor,
        )

    async def fund_liquidity(
        self, *, actor: str, currency: str, amount_minor: int, reference: str | None
    ) -> wire.Funding:
        """Fund the platform's FX position in a currency; audited before it is done."""
        funding_id = new_object_id()
        await record_admin_action(
            self._pool,
            actor=actor,
            action="liquidity.fund",
            target=f"currency:{currency.upper()}",
            details={"amount": amount_minor, "funding_id": funding_id, "reference": reference},
        )
        posted = await self._ledger.fund_liquidity(
            funding_id=funding_id, currency_code=currency, amount_minor=amount_minor
        )
        return wire.Funding(
            id=encode_id("fund", funding_id),
            currency=currency.upper(),
            amount=amount_minor,
            created_at=utc_from_ns(posted.timestamp_ns),
        )

    async def _event(
        self,
        *,
        event_id: int,
        tenant_id: int,
        event_type: str,
        object_id: int,
        payload: msgspec.Struct,
    ) -> None:
        """Write the event to the outbox; its id derives from the ledger transfer, so a
        reconciler re-creating it after a crash writes the very same event."""
        await self._writer.write(
            event_insert,
            (
                as_uuid(event_id),
                tenant_id,
                event_type,
                as_uuid(object_id),
                msgspec.json.encode(payload).decode(),
            ),
        )

    async def _record_then_move(
        self,
        *,
        statement: BatchStatement,
        row: tuple[Any, ...],
        region: str,
        move: Callable[[], Awaitable[Posted]],
    ) -> Posted:
        """Write the intent row (batched), then move the money; a refusal is noted on the row.

        The row comes first so that nothing the client sent is lost if the process dies
        between the two writes: the reconciler then finds a row without a transfer and
        settles it.
        """
        await self._writer.write(statement, row)
        try:
            return await move()
        except LedgerError as error:
            await mark_rejected(
                self._pool,
                table=statement.table,
                object_id=row[0],
                compliance_region=region,
                code=error.code,
            )
            raise

    async def _pending_transfer(self, tenant_id: int, hold_id: int) -> tb.Transfer:
        """The hold's ledger transfer, if it belongs to this tenant."""
        found = await self._ledger_client.lookup_transfers(
            [transfer_id(object_id=hold_id, leg=Leg.HOLD)]
        )
        if not found or found[0].user_data_64 != tenant_id:
            raise HoldUnknown(f"no hold {encode_id('hold', hold_id)}")
        return found[0]

    async def _hold_row(self, principal: Principal, hold_id: int) -> HoldRow:
        """The hold's metadata (reference, currency): decorates answers, never moves money."""
        row = await get_hold(
            self._pool,
            compliance_region=principal.compliance_region,
            tenant_id=principal.tenant_id,
            hold_id=uuid.UUID(int=hold_id),
        )
        if row is None:
            raise HoldUnknown(f"no hold {encode_id('hold', hold_id)}")
        return row


def _expiry(created_at: datetime.datetime, timeout_seconds: int) -> datetime.datetime | None:
    return created_at + datetime.timedelta(seconds=timeout_seconds) if timeout_seconds else None


def _hold_view(
    hold_id: int,
    row: HoldRow,
    pending: tb.Transfer,
    *,
    captured_amount: int | None,
    voided: bool,
) -> wire.Hold:
    """The hold as the API shows it; its state comes from the ledger's transfers."""
    created_at = utc_from_ns(pending.timestamp)
    status: HoldStatus = (
        "captured" if captured_amount is not None else "voided" if voided else "pending"
    )
    expires_at = _expiry(created_at, pending.timeout)
    if status == "pending" and expires_at and expires_at.timestamp() <= time.time():
        status = "expired"
    return wire.Hold(
        id=encode_id("hold", hold_id),
        currency=row.currency,
        amount=pending.amount,
        captured_amount=captured_amount or 0,
        status=status,
        timeout_seconds=pending.timeout,
        expires_at=expires_at,
        reference=row.reference,
        created_at=created_at,
    )


def statement_entry(entry: StatementEntry, currency: str) -> wire.StatementEntry:
    """A ledger statement line as the API shows it, joined to the object the tenant knows."""
    prefix = _object_prefixes.get(entry.kind, "obj")
    return wire.StatementEntry(
        id=f"ltr_{entry.transfer_id:032x}",
        object_id=encode_id(prefix, entry.object_id),
        type=entry.kind,
        direction=entry.direction,
        amount=entry.amount,
        currency=currency,
        status=entry.status,
        balance_posted=entry.balance_posted,
        balance_pending=entry.balance_pending,
        created_at=utc_from_ns(entry.timestamp_ns),
    )
