"""Batch payouts in the ledger: one conversion chain per currency pair, then a hold per item.

A batch converts each (source, target) currency pair once, for the pair's totals, as one
linked chain of posted transfers (user_data_128 = the batch id):

    wallet(src)          -> CLEARING(src)          sum of the items' source amounts
    wallet(src)          -> CLEARING(src)          sum of the items' fees
    FX_POSITION(dst)     -> PENDING_OUTBOUND(dst)  sum of the items' target amounts (cross only)

CLEARING is the tenant's PENDING_OUTBOUND account with sub-account `clearing_sub_account`:
the batch's money, out of the wallet, not yet spent. The wallet leg checks the funds and the
FX_POSITION leg the platform's liquidity, once for the whole pair, so a pair that cannot be
funded fails as a whole (and an atomic batch links every pair into one chain).

Each item then holds its own share with pending transfers (user_data_128 = the item's
transfer id, ids derived from it), so items are settled and refunded one by one by the
same worker steps as single payouts:

    CLEARING(src) -> FX_POSITION(src)  item source amount  (same currency: PENDING_OUTBOUND)
    CLEARING(src) -> FEE_REVENUE(src)  item fee

- commit posts the item's holds (the platform's purchase and the fee are final); `settle`
  then moves the target out through the regional settlement account, as for any payout;
- abort voids the holds and, in the same chain, returns the item's source amount and fee to
  the wallet and its target amount to the platform's liquidity: the wallet is whole for that
  item, whatever became of the others.

A crash between the chain and the batch's rows leaves money in CLEARING that no item will
spend; `reversal` undoes a pair leg for the reconciler (see `gateway.batches.repair`).
"""

from __future__ import annotations

import asyncio
import hashlib

import msgspec
import tigerbeetle as tb

from ledger.accounts import (
    AccountType,
    new_account,
    platform_account_id,
    tenant_account_id,
)
from ledger.chains import transfers_per_request_max
from ledger.errors import LedgerError
from ledger.invariants import ensure
from ledger.outcomes import (
    chain_rests_applied_before,
    check_account_results,
    check_stored_as_sent,
    check_transfer_results,
)
from ledger.service import Ledger, validate_amount
from ledger.transfers import Leg, TransferCode, linked, transfer_id

clearing_sub_account = 1


class NettedPair(msgspec.Struct, frozen=True, kw_only=True):
    """The totals of one currency pair of a batch: its conversion chain's amounts."""

    batch_id: int
    tenant_id: int
    source_currency: str
    target_currency: str
    source_amount_minor: int
    fee_minor: int
    target_amount_minor: int


class NettedItem(msgspec.Struct, frozen=True, kw_only=True):
    """One item's share of its pair (its own transfer id, amounts and currencies)."""

    item_id: int
    tenant_id: int
    source_currency: str
    source_amount_minor: int
    fee_minor: int
    target_currency: str
    target_amount_minor: int


def netting_id(*, batch_id: int, source_currency: str, target_currency: str) -> int:
    """The object id the pair's chain derives its transfer ids from."""
    digest = hashlib.blake2b(
        f"{batch_id:032x}:{source_currency}:{target_currency}".encode(),
        digest_size=16,
        person=b"kovra.netting",
    ).digest()
    return int.from_bytes(digest, "big") or 1


class Netting:
    """The ledger side of batches over one `Ledger`."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def _number(self, currency_code: str) -> int:
        return self._ledger.currencies.get(currency_code).number

    def clearing_id(self, tenant_id: int, currency_code: str) -> int:
        return tenant_account_id(
            tenant_id,
            AccountType.PENDING_OUTBOUND,
            self._number(currency_code),
            sub_account=clearing_sub_account,
        )

    async def open_clearing_accounts(self, tenant_id: int, currency_codes: set[str]) -> None:
        """Open the tenant's clearing accounts (idempotent: `exists` is success)."""
        accounts = [new_account(self.clearing_id(tenant_id, c)) for c in sorted(currency_codes)]
        if accounts:
            check_account_results(accounts, await self._ledger.client.create_accounts(accounts))

    # ----------------------------------------------------------------------------------
    # The pair's conversion chain.

    def pair_chain(self, pair: NettedPair) -> list[tb.Transfer]:
        """The pair's posted legs (not yet linked: the caller links one pair or a batch)."""
        source = self._number(pair.source_currency)
        target = self._number(pair.target_currency)
        object_id = netting_id(
            batch_id=pair.batch_id,
            source_currency=pair.source_currency,
            target_currency=pair.target_currency,
        )
        wallet = tenant_account_id(pair.tenant_id, AccountType.TENANT_WALLET, source)
        clearing = self.clearing_id(pair.tenant_id, pair.source_currency)
        legs = [(Leg.BATCH_SOURCE, TransferCode.BATCH_SOURCE, wallet, clearing,
                 pair.source_amount_minor, source)]  # fmt: skip
        if pair.fee_minor > 0:
            legs.append((Leg.BATCH_FEE, TransferCode.BATCH_FEE, wallet, clearing,
                         pair.fee_minor, source))  # fmt: skip
        if source != target:
            legs.append(
                (
                    Leg.BATCH_TARGET,
                    TransferCode.BATCH_TARGET,
                    platform_account_id(AccountType.FX_POSITION, target),
                    tenant_account_id(pair.tenant_id, AccountType.PENDING_OUTBOUND, target),
                    pair.target_amount_minor,
                    target,
                )
            )
        return [
            tb.Transfer(
                id=transfer_id(object_id=object_id, leg=leg),
                debit_account_id=debit,
                credit_account_id=credit,
                amount=validate_amount(amount, field="amount"),
                ledger=ledger,
                code=code,
                user_data_128=pair.batch_id,
                user_data_64=pair.tenant_id,
            )
            for leg, code, debit, credit, amount, ledger in legs
        ]

    # ----------------------------------------------------------------------------------
    # One item's holds.

    def _item_legs(self, item: NettedItem) -> list[tuple[Leg, Leg, Leg, TransferCode, int, int]]:
        """(pending, post, void, code, credit account, amount) of each held leg."""
        source = self._number(item.source_currency)
        target = self._number(item.target_currency)
        spent_to = (
            platform_account_id(AccountType.FX_POSITION, source)
            if source != target
            else tenant_account_id(item.tenant_id, AccountType.PENDING_OUTBOUND, target)
        )
        legs = [
            (
                Leg.PAYOUT_SOURCE,
                Leg.PAYOUT_SOURCE_POST,
                Leg.PAYOUT_SOURCE_VOID,
                TransferCode.BATCH_ITEM_SOURCE,
                spent_to,
                validate_amount(item.source_amount_minor, field="source_amount"),
            )
        ]
        if item.fee_minor > 0:
            legs.append(
                (
                    Leg.PAYOUT_FEE,
                    Leg.PAYOUT_FEE_POST,
                    Leg.PAYOUT_FEE_VOID,
                    TransferCode.BATCH_ITEM_FEE,
                    platform_account_id(AccountType.FEE_REVENUE, source),
                    validate_amount(item.fee_minor, field="fee"),
                )
            )
        return legs

    def item_reservation(self, item: NettedItem) -> list[tb.Transfer]:
        """The item's holds on the clearing account, as one linked chain."""
        clearing = self.clearing_id(item.tenant_id, item.source_currency)
        ledger = self._number(item.source_currency)
        return linked(
            [
                tb.Transfer(
                    id=transfer_id(object_id=item.item_id, leg=pending),
                    debit_account_id=clearing,
                    credit_account_id=credit,
                    amount=amount,
                    ledger=ledger,
                    code=code,
                    flags=tb.TransferFlags.PENDING,
                    user_data_128=item.item_id,
                    user_data_64=item.tenant_id,
                )
                for pending, _, _, code, credit, amount in self._item_legs(item)
            ]
        )

    def item_hold_voids(self, item: NettedItem) -> list[tb.Transfer]:
        """Voids of the item's holds that give nothing back, each on its own: for a batch
        undone as a whole, whose pair chains are reversed instead (`gateway.batches.repair`).
        A void already made, or of a hold never made, changes nothing."""
        holds = self.item_reservation(item)
        return [
            self.hold_void(hold, void_id=transfer_id(object_id=item.item_id, leg=void))
            for hold, (_, _, void, _, _, _) in zip(holds, self._item_legs(item), strict=True)
        ]

    @staticmethod
    def hold_void(hold: tb.Transfer, *, void_id: int) -> tb.Transfer:
        """The void of an item's hold, giving nothing back. Every caller builds it here, so
        two undoing the same batch make the very same transfer (TigerBeetle: `exists`)."""
        return tb.Transfer(
            id=void_id,
            pending_id=hold.id,
            debit_account_id=hold.debit_account_id,
            credit_account_id=hold.credit_account_id,
            amount=0,
            ledger=hold.ledger,
            code=hold.code,
            flags=tb.TransferFlags.VOID_PENDING_TRANSFER,
            user_data_128=hold.user_data_128,
            user_data_64=hold.user_data_64,
        )

    def item_resolution(self, item: NettedItem, *, post: bool) -> list[tb.Transfer]:
        """Post (commit) or void the item's holds, as one chain; a void also returns the
        item's money: source and fee to the wallet, target to the platform's liquidity."""
        clearing = self.clearing_id(item.tenant_id, item.source_currency)
        source = self._number(item.source_currency)
        target = self._number(item.target_currency)
        flag = (
            tb.TransferFlags.POST_PENDING_TRANSFER
            if post
            else tb.TransferFlags.VOID_PENDING_TRANSFER
        )
        transfers = [
            tb.Transfer(
                id=transfer_id(object_id=item.item_id, leg=post_leg if post else void_leg),
                pending_id=transfer_id(object_id=item.item_id, leg=pending),
                debit_account_id=clearing,
                credit_account_id=credit,
                amount=tb.AMOUNT_MAX if post else 0,
                ledger=source,
                code=code,
                flags=flag,
                user_data_128=item.item_id,
                user_data_64=item.tenant_id,
            )
            for pending, post_leg, void_leg, code, credit, _ in self._item_legs(item)
        ]
        if not post:
            transfers.extend(self._returns(item, clearing=clearing, source=source, target=target))
        return linked(transfers)

    def _returns(
        self, item: NettedItem, *, clearing: int, source: int, target: int
    ) -> list[tb.Transfer]:
        returns = [
            tb.Transfer(
                id=transfer_id(object_id=item.item_id, leg=Leg.BATCH_ITEM_RETURN),
                debit_account_id=clearing,
                credit_account_id=tenant_account_id(
                    item.tenant_id, AccountType.TENANT_WALLET, source
                ),
                amount=item.source_amount_minor + item.fee_minor,
                ledger=source,
                code=TransferCode.BATCH_ITEM_RETURN,
                user_data_128=item.item_id,
                user_data_64=item.tenant_id,
            )
        ]
        if source != target:
            returns.append(
                tb.Transfer(
                    id=transfer_id(object_id=item.item_id, leg=Leg.BATCH_ITEM_TARGET_RETURN),
                    debit_account_id=tenant_account_id(
                        item.tenant_id, AccountType.PENDING_OUTBOUND, target
                    ),
                    credit_account_id=platform_account_id(AccountType.FX_POSITION, target),
                    amount=validate_amount(item.target_amount_minor, field="target_amount"),
                    ledger=target,
                    code=TransferCode.BATCH_ITEM_TARGET_RETURN,
                    user_data_128=item.item_id,
                    user_data_64=item.tenant_id,
                )
            )
        return returns

    def item_transfer_ids(self, item: NettedItem) -> dict[str, int]:
        """The ids of the item's first held leg and of what may follow it, by role."""
        return {
            "pending": transfer_id(object_id=item.item_id, leg=Leg.PAYOUT_SOURCE),
            "post": transfer_id(object_id=item.item_id, leg=Leg.PAYOUT_SOURCE_POST),
            "void": transfer_id(object_id=item.item_id, leg=Leg.PAYOUT_SOURCE_VOID),
            "settlement": transfer_id(object_id=item.item_id, leg=Leg.PAYOUT_SETTLEMENT),
        }

    # ----------------------------------------------------------------------------------
    # Submitting many chains: whole chains packed into requests of at most
    # `transfers_per_request_max`, the requests in flight together.

    async def submit_chains(self, chains: list[list[tb.Transfer]]) -> list[LedgerError | None]:
        """Create every chain; for each, None when it applied (or already had) or the
        operating error that refused it. Programmer errors propagate."""
        requests: list[list[int]] = [[]]
        size = 0
        for index, chain in enumerate(chains):
            ensure(0 < len(chain) <= transfers_per_request_max, "a chain fits one request")
            if size + len(chain) > transfers_per_request_max:
                requests.append([])
                size = 0
            requests[-1].append(index)
            size += len(chain)
        outcomes: list[LedgerError | None] = [None] * len(chains)

        async def send(indices: list[int]) -> None:
            transfers = [t for i in indices for t in chains[i]]
            results = await self._ledger.client.create_transfers(transfers)
            ensure(len(results) == len(transfers), "one result per transfer")
            offset = 0
            for i in indices:
                chain_results = results[offset : offset + len(chains[i])]
                offset += len(chains[i])
                try:
                    check_transfer_results(chains[i], chain_results)
                    for rest in chain_rests_applied_before(chains[i], chain_results):
                        await check_stored_as_sent(rest, self._ledger.client.lookup_transfers)
                except LedgerError as error:
                    outcomes[i] = error

        await asyncio.gather(*(send(indices) for indices in requests if indices))
        return outcomes

    # ----------------------------------------------------------------------------------
    # Repair: undo a posted pair leg whose batch was never recorded.

    @staticmethod
    def reversal(leg: tb.Transfer) -> tb.Transfer:
        """The posted transfer that gives `leg`'s amount back (its id derives from the leg)."""
        ensure(
            leg.code
            in (
                int(TransferCode.BATCH_SOURCE),
                int(TransferCode.BATCH_FEE),
                int(TransferCode.BATCH_TARGET),
            ),
            "only a pair's conversion legs are reversed",
        )
        return tb.Transfer(
            id=transfer_id(object_id=leg.id, leg=Leg.BATCH_REVERSAL),
            debit_account_id=leg.credit_account_id,
            credit_account_id=leg.debit_account_id,
            amount=leg.amount,
            ledger=leg.ledger,
            code=TransferCode.BATCH_REVERSAL,
            user_data_128=leg.user_data_128,
            user_data_64=leg.user_data_64,
        )
