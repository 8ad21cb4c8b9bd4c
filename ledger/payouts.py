"""Payouts: the linked chain of SPEC §4, reserved, then committed or aborted, then settled.

A cross-currency payout is TigerBeetle's currency-exchange pattern, one linked chain across
two ledgers:

    wallet(src)        -> FX_POSITION(src)       source amount   (the platform buys src)
    wallet(src)        -> FEE_REVENUE(src)       fee
    FX_POSITION(dst)   -> PENDING_OUTBOUND(dst)  target amount   (the platform sells dst)

A same-currency payout has no exchange: wallet -> PENDING_OUTBOUND plus the fee leg.
`reserve` creates the legs as pending transfers (the funds are held), `commit` posts them and
`abort` voids them, each as one linked chain so all legs move together or not at all.
`settle` moves the committed amount to the regional settlement account once the rail has
paid; `refund` reverses a committed payout that the rail returned.

A batch item (`netted=True`) has its own shape, built by `ledger.netting`: its holds draw on
the batch's clearing account, and aborting it also returns its money to the wallet. The
same four calls drive both, so the transfer worker does not need to tell them apart.
"""

from __future__ import annotations

import enum
from typing import Final

import msgspec
import tigerbeetle as tb

from ledger.accounts import AccountType, platform_account_id, tenant_account_id
from ledger.currencies import Currency
from ledger.errors import InvalidAmount, ReservationReleased
from ledger.invariants import ensure
from ledger.netting import NettedItem, Netting
from ledger.outcomes import (
    chain_rests_applied_before,
    check_stored_as_sent,
    check_transfer_results,
)
from ledger.service import Ledger, Posted, validate_amount
from ledger.transfers import Leg, TransferCode, linked, transfer_id


class Payout(msgspec.Struct, frozen=True, kw_only=True):
    """The amounts of one payout, fixed by its quote before any money moves."""

    payout_id: int
    tenant_id: int
    source_currency: str
    source_amount_minor: int
    fee_minor: int
    target_currency: str
    target_amount_minor: int
    # A batch item, held on the batch's clearing account (see `ledger.netting`).
    netted: bool = False


def netted_item(payout: Payout) -> NettedItem:
    return NettedItem(
        item_id=payout.payout_id,
        tenant_id=payout.tenant_id,
        source_currency=payout.source_currency,
        source_amount_minor=payout.source_amount_minor,
        fee_minor=payout.fee_minor,
        target_currency=payout.target_currency,
        target_amount_minor=payout.target_amount_minor,
    )


class PayoutState(enum.Enum):
    """Where a payout stands, rebuilt from TigerBeetle alone (for the reconciler)."""

    ABSENT = "absent"
    RESERVED = "reserved"
    COMMITTED = "committed"
    ABORTED = "aborted"
    SETTLED = "settled"
    REFUNDED = "refunded"


class _LegPlan(msgspec.Struct, frozen=True):
    pending: Leg
    post: Leg
    void: Leg
    refund: Leg
    code: TransferCode
    refund_code: TransferCode
    debit_account_id: int
    credit_account_id: int
    amount: int
    ledger: int


_pending_linked: Final = tb.TransferFlags.PENDING | tb.TransferFlags.LINKED


class Payouts:
    """Payout operations over a `Ledger` (its client and currencies)."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def _legs(self, payout: Payout) -> list[_LegPlan]:
        currencies = self._ledger.currencies
        source = currencies.get(payout.source_currency)
        target = currencies.get(payout.target_currency)
        validate_amount(payout.source_amount_minor, field="source_amount")
        validate_amount(payout.target_amount_minor, field="target_amount")
        if payout.fee_minor != 0:
            validate_amount(payout.fee_minor, field="fee")
        if source == target and payout.source_amount_minor != payout.target_amount_minor:
            raise InvalidAmount("a same-currency payout sends exactly its source amount")
        wallet = tenant_account_id(payout.tenant_id, AccountType.TENANT_WALLET, source.number)
        outbound = tenant_account_id(payout.tenant_id, AccountType.PENDING_OUTBOUND, target.number)
        legs: list[_LegPlan] = []
        if source == target:
            legs.append(
                self._plan(Leg.PAYOUT_TARGET, wallet, outbound, payout.target_amount_minor, target)
            )
        else:
            legs.append(
                self._plan(
                    Leg.PAYOUT_SOURCE,
                    wallet,
                    platform_account_id(AccountType.FX_POSITION, source.number),
                    payout.source_amount_minor,
                    source,
                )
            )
        if payout.fee_minor > 0:
            legs.append(
                self._plan(
                    Leg.PAYOUT_FEE,
                    wallet,
                    platform_account_id(AccountType.FEE_REVENUE, source.number),
                    payout.fee_minor,
                    source,
                )
            )
        if source != target:
            legs.append(
                self._plan(
                    Leg.PAYOUT_TARGET,
                    platform_account_id(AccountType.FX_POSITION, target.number),
                    outbound,
                    payout.target_amount_minor,
                    target,
                )
            )
        return legs

    @staticmethod
    def _plan(leg: Leg, debit: int, credit: int, amount: int, currency: Currency) -> _LegPlan:
        post, void, refund, code, refund_code = _leg_roles[leg]
        return _LegPlan(
            leg, post, void, refund, code, refund_code, debit, credit, amount, currency.number
        )

    # ----------------------------------------------------------------------------------
    # Reserve, commit, abort.

    async def reserve(self, payout: Payout, *, timeout_seconds: int = 0) -> Posted:
        """Hold every leg as a pending transfer, all or nothing."""
        if payout.netted:
            ensure(timeout_seconds == 0, "batch items are held until resolved")
            chain = Netting(self._ledger).item_reservation(netted_item(payout))
            return await self._submit_chain(payout, _reserve_legs, chain)
        plans = self._legs(payout)
        last = len(plans) - 1
        # Linked here rather than by `linked()`, which would build every leg but the last
        # a second time: this is the payment path's one ledger call.
        transfers = [
            tb.Transfer(
                id=transfer_id(object_id=payout.payout_id, leg=plan.pending),
                debit_account_id=plan.debit_account_id,
                credit_account_id=plan.credit_account_id,
                amount=plan.amount,
                ledger=plan.ledger,
                code=plan.code,
                flags=_pending_linked if index < last else tb.TransferFlags.PENDING,
                timeout=timeout_seconds,
                user_data_128=payout.payout_id,
                user_data_64=payout.tenant_id,
            )
            for index, plan in enumerate(plans)
        ]
        results = await self._ledger.client.create_transfers(transfers)
        timestamps = check_transfer_results(transfers, results)
        existed = results[0].status is tb.CreateTransferStatus.EXISTS
        if existed:
            await self._check_applied_as_sent(payout, _reserve_legs, transfers, results)
            await self._ensure_still_reserved(payout)
        return Posted(transfer_id=transfers[0].id, timestamp_ns=timestamps[0], existed=existed)

    async def _ensure_still_reserved(self, payout: Payout) -> None:
        """A retry found the chain an earlier attempt reserved: refuse it if that reservation
        was voided since (by the reconciler, whose `abandoned` row the retry could not
        replace), rather than answer for money the ledger no longer holds. Retries are rare,
        so this lookup never sits on the payment path of a first attempt."""
        if await self.state(payout) is PayoutState.ABORTED:
            raise ReservationReleased()

    async def commit(self, payout: Payout) -> Posted:
        """Post every reserved leg in full: the conversion and fee are now final."""
        return await self._resolve(payout, post=True)

    async def abort(self, payout: Payout) -> Posted:
        """Void every reserved leg: the wallet and liquidity get their funds back."""
        return await self._resolve(payout, post=False)

    async def _resolve(self, payout: Payout, *, post: bool) -> Posted:
        step = _commit_legs if post else _abort_legs
        if payout.netted:
            return await self._submit_chain(
                payout, step, Netting(self._ledger).item_resolution(netted_item(payout), post=post)
            )
        transfers = [
            tb.Transfer(
                id=transfer_id(object_id=payout.payout_id, leg=plan.post if post else plan.void),
                pending_id=transfer_id(object_id=payout.payout_id, leg=plan.pending),
                debit_account_id=plan.debit_account_id,
                credit_account_id=plan.credit_account_id,
                amount=tb.AMOUNT_MAX if post else 0,
                ledger=plan.ledger,
                code=plan.code,
                flags=tb.TransferFlags.POST_PENDING_TRANSFER
                if post
                else tb.TransferFlags.VOID_PENDING_TRANSFER,
                user_data_128=payout.payout_id,
                user_data_64=payout.tenant_id,
            )
            for plan in self._legs(payout)
        ]
        return await self._submit_chain(payout, step, transfers)

    # ----------------------------------------------------------------------------------
    # After the rail: settle, or refund a returned payout.

    async def settle(self, payout: Payout) -> Posted:
        """The rail paid: move the target amount out through the regional settlement account."""
        target = self._ledger.currencies.get(payout.target_currency)
        transfer = tb.Transfer(
            id=transfer_id(object_id=payout.payout_id, leg=Leg.PAYOUT_SETTLEMENT),
            debit_account_id=tenant_account_id(
                payout.tenant_id, AccountType.PENDING_OUTBOUND, target.number
            ),
            credit_account_id=platform_account_id(AccountType.REGIONAL_SETTLEMENT, target.number),
            amount=validate_amount(payout.target_amount_minor, field="target_amount"),
            ledger=target.number,
            code=TransferCode.PAYOUT_SETTLEMENT,
            user_data_128=payout.payout_id,
            user_data_64=payout.tenant_id,
        )
        return await self._submit_chain(payout, (Leg.PAYOUT_SETTLEMENT,), [transfer])

    async def refund(self, payout: Payout, *, refund_fee: bool = True) -> Posted:
        """Reverse a committed (unsettled) payout: every leg flows back, in one chain."""
        ensure(not payout.netted, "a batch item is returned by abort, never refunded after commit")
        transfers = [
            tb.Transfer(
                id=transfer_id(object_id=payout.payout_id, leg=plan.refund),
                debit_account_id=plan.credit_account_id,
                credit_account_id=plan.debit_account_id,
                amount=plan.amount,
                ledger=plan.ledger,
                code=plan.refund_code,
                user_data_128=payout.payout_id,
                user_data_64=payout.tenant_id,
            )
            for plan in reversed(self._legs(payout))
            if refund_fee or plan.pending is not Leg.PAYOUT_FEE
        ]
        return await self._submit_chain(payout, _refund_legs, transfers)

    async def _submit_chain(
        self, payout: Payout, step: tuple[Leg, ...], transfers: list[tb.Transfer]
    ) -> Posted:
        """Create one step's chain (`step` names every leg the step may have)."""
        ensure(bool(transfers), "a payout chain has at least one leg")
        chain = linked(transfers)
        results = await self._ledger.client.create_transfers(chain)
        timestamps = check_transfer_results(chain, results)
        await self._check_applied_as_sent(payout, step, chain, results)
        return Posted(transfer_id=chain[0].id, timestamp_ns=timestamps[0])

    async def _check_applied_as_sent(
        self,
        payout: Payout,
        step: tuple[Leg, ...],
        chain: list[tb.Transfer],
        results: list[tb.CreateTransferResult],
    ) -> None:
        """A chain an earlier attempt applied must be this one: its other legs as sent, and
        none of the step's legs that this attempt left out (a fee gone, another shape)."""
        (rest,) = chain_rests_applied_before(chain, results)
        if not rest and results[0].status is not tb.CreateTransferStatus.EXISTS:
            return
        sent = {transfer.id for transfer in chain}
        every_leg = (transfer_id(object_id=payout.payout_id, leg=leg) for leg in step)
        await check_stored_as_sent(
            rest or chain[:1],
            self._ledger.client.lookup_transfers,
            absent_ids=[leg_id for leg_id in every_leg if leg_id not in sent],
        )

    # ----------------------------------------------------------------------------------
    # Reconciliation: the payout's state from TigerBeetle alone.

    async def state(self, payout: Payout) -> PayoutState:
        """Which of reserve, commit, abort, settle and refund the ledger has applied."""
        if payout.netted:
            return await self._netted_state(payout)
        first = self._legs(payout)[0]
        leg_ids = {
            leg: transfer_id(object_id=payout.payout_id, leg=leg)
            for leg in (first.pending, first.post, first.void, first.refund, Leg.PAYOUT_SETTLEMENT)
        }
        found = {t.id for t in await self._ledger.client.lookup_transfers(list(leg_ids.values()))}
        if leg_ids[first.refund] in found:
            return PayoutState.REFUNDED
        if leg_ids[Leg.PAYOUT_SETTLEMENT] in found:
            return PayoutState.SETTLED
        if leg_ids[first.post] in found:
            return PayoutState.COMMITTED
        if leg_ids[first.void] in found:
            return PayoutState.ABORTED
        if leg_ids[first.pending] in found:
            return PayoutState.RESERVED
        return PayoutState.ABSENT

    async def _netted_state(self, payout: Payout) -> PayoutState:
        ids = Netting(self._ledger).item_transfer_ids(netted_item(payout))
        found = {t.id for t in await self._ledger.client.lookup_transfers(list(ids.values()))}
        for role, state in (
            ("settlement", PayoutState.SETTLED),
            ("post", PayoutState.COMMITTED),
            ("void", PayoutState.ABORTED),
            ("pending", PayoutState.RESERVED),
        ):
            if ids[role] in found:
                return state
        return PayoutState.ABSENT


# Every leg each step of a payout (single or a batch item) may write: a retry that leaves one
# out must find it absent.
_reserve_legs = (Leg.PAYOUT_SOURCE, Leg.PAYOUT_FEE, Leg.PAYOUT_TARGET)
_commit_legs = (Leg.PAYOUT_SOURCE_POST, Leg.PAYOUT_FEE_POST, Leg.PAYOUT_TARGET_POST)
_abort_legs = (
    Leg.PAYOUT_SOURCE_VOID,
    Leg.PAYOUT_FEE_VOID,
    Leg.PAYOUT_TARGET_VOID,
    Leg.BATCH_ITEM_RETURN,
    Leg.BATCH_ITEM_TARGET_RETURN,
)
_refund_legs = (Leg.REFUND_SOURCE, Leg.REFUND_FEE, Leg.REFUND_TARGET)
_leg_roles: dict[Leg, tuple[Leg, Leg, Leg, TransferCode, TransferCode]] = {
    Leg.PAYOUT_SOURCE: (
        Leg.PAYOUT_SOURCE_POST,
        Leg.PAYOUT_SOURCE_VOID,
        Leg.REFUND_SOURCE,
        TransferCode.PAYOUT_SOURCE,
        TransferCode.REFUND_SOURCE,
    ),
    Leg.PAYOUT_FEE: (
        Leg.PAYOUT_FEE_POST,
        Leg.PAYOUT_FEE_VOID,
        Leg.REFUND_FEE,
        TransferCode.PAYOUT_FEE,
        TransferCode.REFUND_FEE,
    ),
    Leg.PAYOUT_TARGET: (
        Leg.PAYOUT_TARGET_POST,
        Leg.PAYOUT_TARGET_VOID,
        Leg.REFUND_TARGET,
        TransferCode.PAYOUT_TARGET,
        TransferCode.REFUND_TARGET,
    ),
}
