"""Money in under a mandate (SPEC §10): a succeeded collection credits the tenant's wallet,
and a returned one takes the money back, each exactly once.

A collection moves money the platform's bank account received, so its credit is

    REGIONAL_SETTLEMENT(currency) -> TENANT_WALLET(currency)      leg COLLECTION_CREDIT

with the collection's id in `user_data_128` and the tenant in `user_data_64`. The transfer id
derives from the collection id, so whatever the provider repeats, the wallet is credited once.

A return (the payer's bank took the money back) cannot simply reverse the credit: the wallet
may have spent it since, and a wallet never goes negative. So the wallet gives back what it
has, up to the amount, and the platform's suspense account covers the rest:

    TENANT_WALLET -> REGIONAL_SETTLEMENT   up to the amount (balancing)   COLLECTION_RETURN
    SUSPENSE      -> REGIONAL_SETTLEMENT   the rest, if any     COLLECTION_RETURN_SHORTFALL

Either way the settlement account is credited the full amount, as the bank was; the
shortfall is a debit balance on suspense until operations recover it. The second leg's amount
depends on what the first actually moved, so the two are separate requests: a repeat, or a
resume after a crash between them, reads the first leg's stored amount and completes the
second with the same amount every time. `state_many` rebuilds all of this from TigerBeetle
alone, by the deterministic ids, for the reconciler.

Every call takes a batch and sends one request per step for the whole batch.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import replace
from typing import Final

import msgspec
import tigerbeetle as tb

from ledger.accounts import AccountType, platform_account_id, tenant_account_id
from ledger.chains import Chain, create_chains, lookups_per_request_max
from ledger.clients import LedgerClient, batch_size_max
from ledger.errors import CollectionNotCredited, LedgerError, LedgerIdConflict
from ledger.invariants import ensure, unreachable
from ledger.outcomes import check_transfer_results, stored_field_differing
from ledger.service import Ledger, Posted, validate_amount
from ledger.transfers import Leg, TransferCode, transfer_id

# The most collections one call takes: the largest batch the worker hands over at once.
movements_per_call_max: Final = 10_000
# One TigerBeetle request carries at most this many transfers.
transfers_per_request_max: Final = batch_size_max


class CollectionMovement(msgspec.Struct, frozen=True, kw_only=True):
    """What the ledger needs to know of one collection to credit or return it."""

    collection_id: int  # The API object's 128-bit id; rides in user_data_128.
    tenant_id: int
    currency_code: str
    amount_minor: int


class Reversal(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of a return, the same however many times it is asked for."""

    reversed_minor: int  # Taken back from the wallet (what it had, up to the amount).
    shortfall_minor: int  # The rest, which the bank took and no wallet paid (on suspense).
    timestamp_ns: int  # When the return's last leg was applied.


class CollectionLedgerStatus(enum.Enum):
    """Where a collection's money stands in the ledger."""

    ABSENT = "absent"  # Never credited.
    CREDITED = "credited"
    RETURNING = "returning"  # The wallet gave back; the shortfall leg is still to write.
    RETURNED = "returned"


class CollectionLedgerState(msgspec.Struct, frozen=True, kw_only=True):
    """A collection's ledger legs, read from TigerBeetle alone."""

    status: CollectionLedgerStatus
    credited_minor: int
    reversed_minor: int
    shortfall_minor: int


class _Plan(msgspec.Struct, frozen=True, kw_only=True):
    """One movement's accounts and transfer ids, computed, never looked up."""

    movement: CollectionMovement
    ledger: int
    wallet: int
    settlement: int
    suspense: int
    credit_id: int
    return_id: int
    shortfall_id: int

    @property
    def leg_ids(self) -> tuple[int, int, int]:
        return self.credit_id, self.return_id, self.shortfall_id


class CollectionsLedger:
    """Collection credits and returns over a `Ledger` (its client and currencies)."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    @property
    def _client(self) -> LedgerClient:
        return self._ledger.client

    async def open_wallet(self, *, tenant_id: int, currency_code: str) -> None:
        """Open the tenant's accounts in the currency a mandate collects (one request; the
        ledger answers `exists` for those already open). A tenant that began before the
        currency was enabled has no wallet in it, and a credit to a missing account would
        fail for good: TigerBeetle remembers a failed transfer id, and a collection's credit
        id is derived from the collection."""
        await self._ledger.open_tenant_accounts(tenant_id, [currency_code])

    def _plan(self, movement: CollectionMovement) -> _Plan:
        """The movement's accounts and ids; `LedgerError` for an amount out of range or a
        currency not enabled, before any request."""
        currency = self._ledger.currencies.get(movement.currency_code)
        validate_amount(movement.amount_minor)
        number = currency.number
        return _Plan(
            movement=movement,
            ledger=number,
            wallet=tenant_account_id(movement.tenant_id, AccountType.TENANT_WALLET, number),
            settlement=platform_account_id(AccountType.REGIONAL_SETTLEMENT, number),
            suspense=platform_account_id(AccountType.SUSPENSE, number),
            credit_id=transfer_id(object_id=movement.collection_id, leg=Leg.COLLECTION_CREDIT),
            return_id=transfer_id(object_id=movement.collection_id, leg=Leg.COLLECTION_RETURN),
            shortfall_id=transfer_id(
                object_id=movement.collection_id, leg=Leg.COLLECTION_RETURN_SHORTFALL
            ),
        )

    def _plans(self, movements: Sequence[CollectionMovement]) -> list[_Plan | LedgerError]:
        ensure(len(movements) <= movements_per_call_max, "at most movements_per_call_max")
        plans: list[_Plan | LedgerError] = []
        for movement in movements:
            try:
                plans.append(self._plan(movement))
            except LedgerError as error:
                plans.append(error)
        return plans

    # ----------------------------------------------------------------------------------
    # Credit.

    async def credit_many(
        self, movements: Sequence[CollectionMovement]
    ) -> list[Posted | LedgerError]:
        """Credit each collection to its tenant's wallet, all in one request: per movement
        its `Posted` (`existed`, with the first credit's timestamp, when it was credited
        before), or the error that refused it (a credit under the same id with other
        fields is `LedgerIdConflict`)."""
        chains = [
            plan if isinstance(plan, LedgerError) else _credit_chain(plan)
            for plan in self._plans(movements)
        ]
        return await create_chains(self._client, chains)

    # ----------------------------------------------------------------------------------
    # Return.

    async def reverse_many(
        self, movements: Sequence[CollectionMovement]
    ) -> list[Reversal | LedgerError]:
        """Return each collection: the wallet gives back what it has, up to the amount, and
        suspense covers the rest. Per movement its `Reversal`, the same on every repeat and
        after a crash between the two legs, or the error that refused it:
        `CollectionNotCredited` for a collection never credited (nothing moves), a
        `LedgerIdConflict` when the credit or a return leg holds other fields.

        Four round trips at most for the whole batch: one lookup of what is already there,
        the wallet legs, one lookup of what they moved, the shortfall legs."""
        plans = self._plans(movements)
        ready = [(i, plan) for i, plan in enumerate(plans) if isinstance(plan, _Plan)]
        outcomes: dict[int, Reversal | LedgerError] = {
            i: plan for i, plan in enumerate(plans) if isinstance(plan, LedgerError)
        }
        stored = await _lookup(self._client, [leg for _, plan in ready for leg in plan.leg_ids])
        credited: list[tuple[int, _Plan]] = []
        for index, plan in ready:
            refusal = _credit_refusal(plan, stored.get(plan.credit_id))
            if refusal is None:
                credited.append((index, plan))
            else:
                outcomes[index] = refusal
        wallet_legs = [(i, plan) for i, plan in credited if plan.return_id not in stored]
        outcomes.update(await self._create_wallet_legs(wallet_legs))
        stored.update(
            await _lookup(
                self._client, [plan.return_id for i, plan in wallet_legs if i not in outcomes]
            )
        )
        completing = [(i, plan) for i, plan in credited if i not in outcomes]
        outcomes.update(await self._complete(completing, stored))
        return [outcomes[index] for index in range(len(plans))]

    async def _create_wallet_legs(
        self, legs: list[tuple[int, _Plan]]
    ) -> dict[int, Reversal | LedgerError]:
        """Write the wallet's balancing legs; the errors of those refused, by index."""
        refused: dict[int, Reversal | LedgerError] = {}
        transfers = [_wallet_leg(plan) for _, plan in legs]
        for (index, _), outcome in zip(legs, await _create(self._client, transfers), strict=True):
            if isinstance(outcome, LedgerError):
                refused[index] = outcome
        return refused

    async def _complete(
        self, legs: list[tuple[int, _Plan]], stored: dict[int, tb.Transfer]
    ) -> dict[int, Reversal | LedgerError]:
        """Write the shortfall legs the wallet legs left (those not written before), then
        answer each return from its stored legs."""
        outcomes: dict[int, Reversal | LedgerError] = {}
        to_write: list[tuple[int, tb.Transfer, tb.Transfer]] = []
        for index, plan in legs:
            wallet_leg = stored.get(plan.return_id)
            if wallet_leg is None:
                unreachable("a wallet leg just written or found before is stored")
            if _stored_otherwise(_wallet_leg(plan), wallet_leg):
                outcomes[index] = _conflict(wallet_leg)
                continue
            shortfall = _shortfall_leg(plan, plan.movement.amount_minor - wallet_leg.amount)
            found = stored.get(plan.shortfall_id)
            if found is not None:
                outcomes[index] = (
                    _conflict(found)
                    if _stored_otherwise(shortfall, found)
                    else _reversal(wallet_leg, found)
                )
            elif shortfall.amount == 0:
                outcomes[index] = _reversal(wallet_leg, None)
            else:
                to_write.append((index, wallet_leg, shortfall))
        created = await _create(self._client, [shortfall for _, _, shortfall in to_write])
        for (index, wallet_leg, shortfall), outcome in zip(to_write, created, strict=True):
            outcomes[index] = (
                outcome
                if isinstance(outcome, LedgerError)
                else _reversal(wallet_leg, replace(shortfall, timestamp=outcome))
            )
        return outcomes

    # ----------------------------------------------------------------------------------
    # Reconciliation: state from TigerBeetle alone.

    async def state_many(
        self, movements: Sequence[CollectionMovement]
    ) -> list[CollectionLedgerState]:
        """Each collection's credited, reversed and shortfall amounts, by one lookup of its
        three deterministic transfer ids for the whole batch. Movements must be valid (an
        amount in range, an enabled currency): they are the collections Kovra recorded."""
        ensure(len(movements) <= movements_per_call_max, "at most movements_per_call_max")
        plans = [self._plan(movement) for movement in movements]
        stored = await _lookup(self._client, [leg for plan in plans for leg in plan.leg_ids])
        return [_state(plan, stored) for plan in plans]


def _credit_chain(plan: _Plan) -> Chain:
    return Chain(
        object_id=plan.movement.collection_id,
        step=(Leg.COLLECTION_CREDIT,),
        transfers=[_credit(plan)],
    )


def _credit(plan: _Plan) -> tb.Transfer:
    movement = plan.movement
    return tb.Transfer(
        id=plan.credit_id,
        debit_account_id=plan.settlement,
        credit_account_id=plan.wallet,
        amount=movement.amount_minor,
        ledger=plan.ledger,
        code=TransferCode.COLLECTION_CREDIT,
        user_data_128=movement.collection_id,
        user_data_64=movement.tenant_id,
    )


def _wallet_leg(plan: _Plan) -> tb.Transfer:
    # Balancing: TigerBeetle moves at most what the wallet has available (none of what
    # holds reserve), and stores the amount it actually moved, zero included.
    movement = plan.movement
    return tb.Transfer(
        id=plan.return_id,
        debit_account_id=plan.wallet,
        credit_account_id=plan.settlement,
        amount=movement.amount_minor,
        ledger=plan.ledger,
        code=TransferCode.COLLECTION_RETURN,
        flags=tb.TransferFlags.BALANCING_DEBIT,
        user_data_128=movement.collection_id,
        user_data_64=movement.tenant_id,
    )


def _shortfall_leg(plan: _Plan, shortfall_minor: int) -> tb.Transfer:
    movement = plan.movement
    return tb.Transfer(
        id=plan.shortfall_id,
        debit_account_id=plan.suspense,
        credit_account_id=plan.settlement,
        amount=shortfall_minor,
        ledger=plan.ledger,
        code=TransferCode.COLLECTION_RETURN_SHORTFALL,
        user_data_128=movement.collection_id,
        user_data_64=movement.tenant_id,
    )


def _credit_refusal(plan: _Plan, credit: tb.Transfer | None) -> LedgerError | None:
    """Why the collection cannot be returned (never credited, or credited otherwise than
    this movement says), or None when it can."""
    if credit is None:
        return CollectionNotCredited(
            "the collection was never credited to the wallet, so there is nothing to return"
        )
    if _stored_otherwise(_credit(plan), credit):
        return LedgerIdConflict(
            f"collection credit {credit.id} was made for another amount, tenant or currency"
        )
    return None


def _reversal(wallet_leg: tb.Transfer, shortfall_leg: tb.Transfer | None) -> Reversal:
    last = wallet_leg if shortfall_leg is None else shortfall_leg
    return Reversal(
        reversed_minor=wallet_leg.amount,
        shortfall_minor=0 if shortfall_leg is None else shortfall_leg.amount,
        timestamp_ns=last.timestamp,
    )


def _stored_otherwise(sent: tb.Transfer, stored: tb.Transfer) -> bool:
    """Whether `stored`, under the id of `sent`, was written with other fields. A balancing
    leg is stored with the amount it moved, at most the amount sent."""
    if int(sent.flags) & int(tb.TransferFlags.BALANCING_DEBIT):
        if stored.amount > sent.amount:
            return True
        sent = replace(sent, amount=stored.amount)
    return stored_field_differing(sent, stored) is not None


def _conflict(stored: tb.Transfer) -> LedgerIdConflict:
    return LedgerIdConflict(f"ledger transfer {stored.id} already exists with other fields")


def _state(plan: _Plan, stored: dict[int, tb.Transfer]) -> CollectionLedgerState:
    credit = stored.get(plan.credit_id)
    wallet_leg = stored.get(plan.return_id)
    shortfall_leg = stored.get(plan.shortfall_id)
    credited = 0 if credit is None else credit.amount
    reversed_minor = 0 if wallet_leg is None else wallet_leg.amount
    shortfall_minor = 0 if shortfall_leg is None else shortfall_leg.amount
    if credit is None:
        status = CollectionLedgerStatus.ABSENT
    elif wallet_leg is None:
        status = CollectionLedgerStatus.CREDITED
    elif reversed_minor + shortfall_minor < credited:
        status = CollectionLedgerStatus.RETURNING
    else:
        status = CollectionLedgerStatus.RETURNED
    return CollectionLedgerState(
        status=status,
        credited_minor=credited,
        reversed_minor=reversed_minor,
        shortfall_minor=shortfall_minor,
    )


async def _create(client: LedgerClient, transfers: list[tb.Transfer]) -> list[int | LedgerError]:
    """Create independent transfers (none linked), in requests of at most
    `transfers_per_request_max`: per transfer its timestamp (the stored one when it
    `exists`), or the operating error that refused it."""
    outcomes: list[int | LedgerError] = []
    for start in range(0, len(transfers), transfers_per_request_max):
        request = transfers[start : start + transfers_per_request_max]
        results = await client.create_transfers(request)
        ensure(len(results) == len(request), "one result per transfer")
        for transfer, result in zip(request, results, strict=True):
            try:
                (timestamp,) = check_transfer_results([transfer], [result])
            except LedgerError as error:
                outcomes.append(error)
            else:
                outcomes.append(timestamp)
    return outcomes


async def _lookup(client: LedgerClient, ids: list[int]) -> dict[int, tb.Transfer]:
    """The stored transfers of `ids`, by id, in as few lookups as TigerBeetle allows."""
    unique = list(dict.fromkeys(ids))
    if not unique:
        return {}
    stored: dict[int, tb.Transfer] = {}
    for start in range(0, len(unique), lookups_per_request_max):
        found = await client.lookup_transfers(unique[start : start + lookups_per_request_max])
        stored.update((transfer.id, transfer) for transfer in found)
    return stored
