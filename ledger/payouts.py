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

The worker drives payouts in batches: `commit_many`, `abort_many` and `settle_many` send
every payout's chain in one request (`ledger.chains`) and answer per payout what the
one-payout call would have (the one-payout calls are these with one payout), and
`commit_and_settle_many` completes the payouts the rail paid, one request per step.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Final

import msgspec
import tigerbeetle as tb

from ledger.accounts import AccountType, platform_account_id, tenant_account_id
from ledger.chains import Chain, chains_per_call_max, create_chains
from ledger.currencies import Currency
from ledger.errors import InvalidAmount, LedgerError, ReservationReleased
from ledger.invariants import ensure
from ledger.netting import NettedItem, Netting
from ledger.service import Ledger, Posted, validate_amount
from ledger.transfers import Leg, TransferCode, linked, transfer_id

# The most payouts one `*_many` call takes (one chain per payout and step).
payouts_per_call_max: Final = chains_per_call_max


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
        self._netting = Netting(ledger)

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
            transfers = self._netting.item_reservation(netted_item(payout))
        else:
            transfers = self._reservation(payout, timeout_seconds)
        reserved = await self._create_one(
            Chain(object_id=payout.payout_id, step=_reserve_legs, transfers=transfers)
        )
        if reserved.existed and not payout.netted:
            await self._ensure_still_reserved(payout)
        return reserved

    def _reservation(self, payout: Payout, timeout_seconds: int) -> list[tb.Transfer]:
        plans = self._legs(payout)
        last = len(plans) - 1
        # Linked here rather than by `linked()`, which would build every leg but the last
        # a second time: this is the payment path's one ledger call.
        return [
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

    async def _ensure_still_reserved(self, payout: Payout) -> None:
        """A retry found the chain an earlier attempt reserved: refuse it if that reservation
        was voided since (by the reconciler, whose `abandoned` row the retry could not
        replace), rather than answer for money the ledger no longer holds. Retries are rare,
        so this lookup never sits on the payment path of a first attempt."""
        if await self.state(payout) is PayoutState.ABORTED:
            raise ReservationReleased()

    async def commit(self, payout: Payout) -> Posted:
        """Post every reserved leg in full: the conversion and fee are now final."""
        return _only(await self.commit_many([payout]))

    async def abort(self, payout: Payout) -> Posted:
        """Void every reserved leg: the wallet and liquidity get their funds back."""
        return _only(await self.abort_many([payout]))

    def _resolution(self, payout: Payout, *, post: bool) -> Chain:
        """The chain that posts (commits) or voids (aborts) the payout's holds."""
        step = _commit_legs if post else _abort_legs
        if payout.netted:
            transfers = self._netting.item_resolution(netted_item(payout), post=post)
            return Chain(object_id=payout.payout_id, step=step, transfers=transfers)
        flags = (
            tb.TransferFlags.POST_PENDING_TRANSFER
            if post
            else tb.TransferFlags.VOID_PENDING_TRANSFER
        )
        plans = self._legs(payout)
        last = len(plans) - 1
        transfers = [
            tb.Transfer(
                id=transfer_id(object_id=payout.payout_id, leg=plan.post if post else plan.void),
                pending_id=transfer_id(object_id=payout.payout_id, leg=plan.pending),
                debit_account_id=plan.debit_account_id,
                credit_account_id=plan.credit_account_id,
                amount=tb.AMOUNT_MAX if post else 0,
                ledger=plan.ledger,
                code=plan.code,
                # Linked as built, as `_reservation` does: a batch builds thousands.
                flags=flags | tb.TransferFlags.LINKED if index < last else flags,
                user_data_128=payout.payout_id,
                user_data_64=payout.tenant_id,
            )
            for index, plan in enumerate(plans)
        ]
        return Chain(object_id=payout.payout_id, step=step, transfers=transfers)

    # ----------------------------------------------------------------------------------
    # After the rail: settle, or refund a returned payout.

    async def settle(self, payout: Payout) -> Posted:
        """The rail paid: move the target amount out through the regional settlement account."""
        return _only(await self.settle_many([payout]))

    def _settlement(self, payout: Payout) -> Chain:
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
        return Chain(
            object_id=payout.payout_id, step=(Leg.PAYOUT_SETTLEMENT,), transfers=[transfer]
        )

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
        return await self._create_one(
            Chain(object_id=payout.payout_id, step=_refund_legs, transfers=linked(transfers))
        )

    # ----------------------------------------------------------------------------------
    # Many payouts at once: one request per step for the whole batch (`ledger.chains`).
    # Each answers one entry per payout, in order: its `Posted`, or the `LedgerError` that
    # payout met, exactly as the one-payout call would have raised it; the one-payout calls
    # are these with one payout.

    async def commit_many(self, payouts: Sequence[Payout]) -> list[Posted | LedgerError]:
        """`commit` every payout, every payout's chain in one request."""
        return await self._create_many(payouts, lambda payout: self._resolution(payout, post=True))

    async def abort_many(self, payouts: Sequence[Payout]) -> list[Posted | LedgerError]:
        """`abort` every payout, every payout's chain in one request."""
        return await self._create_many(payouts, lambda payout: self._resolution(payout, post=False))

    async def settle_many(self, payouts: Sequence[Payout]) -> list[Posted | LedgerError]:
        """`settle` every payout, every settlement in one request."""
        return await self._create_many(payouts, self._settlement)

    async def commit_and_settle_many(self, payouts: Sequence[Payout]) -> list[Posted | LedgerError]:
        """`commit` then `settle` each payout, as the worker completes payouts the rail paid:
        per payout the settlement's `Posted`, or the error of its commit (it is then not
        settled) or of its settlement. One request per step, so two, not one.

        One request would not be sound. A settlement sent as a chain of its own beside the
        commit chain applies even where the commit fails (chains are independent), paying out
        a payout that was never committed. Linked into the commit chain, it fails whenever an
        earlier attempt had committed (an `exists` fails its chain), and a refused settlement
        undoes the commit, which `commit` then `settle` never does.
        """
        committed = await self.commit_many(payouts)
        accepted = [
            payout
            for payout, outcome in zip(payouts, committed, strict=True)
            if isinstance(outcome, Posted)
        ]
        settled = iter(await self.settle_many(accepted))
        return [next(settled) if isinstance(outcome, Posted) else outcome for outcome in committed]

    async def _create_many(
        self, payouts: Sequence[Payout], build: Callable[[Payout], Chain]
    ) -> list[Posted | LedgerError]:
        ensure(len(payouts) <= payouts_per_call_max, "at most payouts_per_call_max payouts")
        return await create_chains(self._ledger.client, [_planned(build, p) for p in payouts])

    async def _create_one(self, chain: Chain) -> Posted:
        return _only(await create_chains(self._ledger.client, [chain]))

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
        ids = self._netting.item_transfer_ids(netted_item(payout))
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


def _planned(build: Callable[[Payout], Chain], payout: Payout) -> Chain | LedgerError:
    """The payout's chain, or the error that refuses it before any request (an amount out of
    range, a currency not enabled), so that it fails alone."""
    try:
        return build(payout)
    except LedgerError as error:
        return error


def _only(outcomes: list[Posted | LedgerError]) -> Posted:
    """The one outcome of a one-payout call, raised if it is an error."""
    (outcome,) = outcomes
    if isinstance(outcome, LedgerError):
        raise outcome
    return outcome


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
