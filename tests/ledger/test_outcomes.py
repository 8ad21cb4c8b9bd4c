"""A retry reuses its operation's transfer ids, so a retry that carries other fields is an id
reused for another operation: every money operation refuses it and moves nothing.

For every operation that writes transfers with ids derived from an object's id (deposits,
liquidity funding, holds and their capture and void, a payout's reservation, commit, abort,
settlement and refund, a batch pair's conversion chain and a batch item's holds and their
resolution), the operation is applied once, then retried with each of its fields changed in
turn: the retry is refused (`LedgerIdConflict`; a hold's capture says `HoldAlreadyCaptured`)
and no balance changes. Linked chains are where this matters most: TigerBeetle stops at a
chain's first event that fails, and `exists` fails it, so a retried chain whose first
transfer is unchanged is compared by `ledger.outcomes` with what the ledger holds, legs left
out included. Runs on the embedded
engine, the ledger server and, with TB_ADDRESSES, a real cluster.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import msgspec
import pytest
import tigerbeetle as tb

from ledger.accounts import AccountType, platform_account_id, tenant_account_id
from ledger.clients import LedgerClient
from ledger.errors import HoldAlreadyCaptured, LedgerError, LedgerIdConflict
from ledger.netting import NettedItem, NettedPair, Netting, clearing_sub_account
from ledger.payouts import Payout
from ledger.transfers import TransferCode, linked, new_object_id
from tests.ledger.fixtures import World, make_world, payout_of_item

currencies = ("EUR", "GBP", "USD", "IDR")
deposits = {"EUR": 10**9, "GBP": 10**9, "USD": 10**9, "IDR": 10**12}
Balances = dict[int, tuple[int, int, int, int]]
# What a retry changed, and the retry.
Retry = tuple[str, Callable[[], Awaitable[object]]]


async def _world_of_two_tenants(client: LedgerClient) -> tuple[World, int]:
    world = await make_world(client, deposits)
    for currency, amount in deposits.items():
        await world.ledger.fund_liquidity(
            funding_id=new_object_id(), currency_code=currency, amount_minor=amount
        )
    netting = Netting(world.ledger)
    other = await world.new_tenant(deposits)
    for tenant in (world.tenant_id, other):
        await netting.open_clearing_accounts(tenant, set(currencies))
    return world, other


async def _balances(world: World, tenants: tuple[int, ...]) -> Balances:
    """Every account a money operation of `tenants` can touch, with its four balances."""
    numbers = [world.ledger.currencies.get(code).number for code in currencies]
    ids = [
        tenant_account_id(tenant, kind, number, sub_account=sub)
        for tenant in tenants
        for number in numbers
        for kind, sub in (
            (AccountType.TENANT_WALLET, 0),
            (AccountType.PENDING_OUTBOUND, 0),
            (AccountType.PENDING_OUTBOUND, clearing_sub_account),
        )
    ]
    ids += [
        platform_account_id(kind, number)
        for number in numbers
        for kind in (AccountType.FX_POSITION, AccountType.FEE_REVENUE)
    ]
    accounts = await world.ledger.client.lookup_accounts(ids)
    assert len(accounts) == len(ids)
    return {
        account.id: (
            account.debits_pending,
            account.debits_posted,
            account.credits_pending,
            account.credits_posted,
        )
        for account in accounts
    }


async def _refused_moving_nothing(
    world: World,
    tenants: tuple[int, ...],
    retries: list[Retry],
    expected: dict[str, type[LedgerError]],
) -> None:
    """Each retry raises the error `expected` names for it (`LedgerIdConflict` unless named)
    and leaves every balance as it was."""
    before = await _balances(world, tenants)
    for changed, retry in retries:
        error = expected.get(changed, LedgerIdConflict)
        try:
            await retry()
        except error:
            pass
        else:
            pytest.fail(f"a retry with another {changed} was applied")
        assert await _balances(world, tenants) == before, f"another {changed} moved money"


def _changed(original: Any, changes: dict[str, Any]) -> list[tuple[str, Any]]:
    """`original` with one field replaced at a time: (field, changed copy)."""
    return [
        (field, msgspec.structs.replace(original, **{field: v})) for field, v in changes.items()
    ]


async def test_a_deposit_or_funding_retried_with_other_fields_is_refused(
    ledger_client: LedgerClient,
) -> None:
    world, other = await _world_of_two_tenants(ledger_client)
    deposit: dict[str, Any] = {
        "tenant_id": world.tenant_id,
        "deposit_id": new_object_id(),
        "currency_code": "EUR",
        "amount_minor": 5_000,
    }
    funding: dict[str, Any] = {
        "funding_id": new_object_id(),
        "currency_code": "IDR",
        "amount_minor": 7_000,
    }
    await world.ledger.deposit(**deposit)
    await world.ledger.fund_liquidity(**funding)
    changes = {"tenant_id": other, "currency_code": "GBP", "amount_minor": 5_001}
    retries: list[Retry] = [
        (f"deposit {field}", partial(world.ledger.deposit, **deposit | {field: value}))
        for field, value in changes.items()
    ]
    retries += [
        (
            f"funding {field}",
            partial(world.ledger.fund_liquidity, **funding | {field: value}),
        )
        for field, value in (("currency_code", "USD"), ("amount_minor", 6_999))
    ]
    await _refused_moving_nothing(world, (world.tenant_id, other), retries, {})
    await world.ledger.deposit(**deposit)  # The same retry is still the same deposit.


async def test_a_hold_and_its_capture_or_void_retried_with_other_fields_are_refused(
    ledger_client: LedgerClient,
) -> None:
    world, other = await _world_of_two_tenants(ledger_client)
    captured: dict[str, Any] = {
        "tenant_id": world.tenant_id,
        "hold_id": new_object_id(),
        "currency_code": "EUR",
    }
    voided = captured | {"hold_id": new_object_id()}
    for hold in (captured, voided):
        await world.ledger.hold(**hold, amount_minor=4_000, timeout_seconds=3_600)
    await world.ledger.capture_hold(**captured, amount_minor=2_500)
    await world.ledger.void_hold(**voided)
    hold_changes = {
        "tenant_id": other,
        "currency_code": "GBP",
        "amount_minor": 4_001,
        "timeout_seconds": 3_601,
    }
    hold = captured | {"amount_minor": 4_000, "timeout_seconds": 3_600}
    retries: list[Retry] = [
        (f"hold {field}", partial(world.ledger.hold, **hold | {field: value}))
        for field, value in hold_changes.items()
    ]
    for field, value in (("tenant_id", other), ("currency_code", "GBP")):
        retries.append(
            (
                f"capture {field}",
                partial(world.ledger.capture_hold, **captured | {field: value}, amount_minor=2_500),
            )
        )
        retries.append(
            (f"void {field}", partial(world.ledger.void_hold, **voided | {field: value}))
        )
    retries.append(
        ("capture amount", partial(world.ledger.capture_hold, **captured, amount_minor=2_501))
    )
    # The capture's id posted the hold already; `capture_hold` says so whatever differs.
    expected: dict[str, type[LedgerError]] = {
        "capture tenant_id": HoldAlreadyCaptured,
        "capture currency_code": HoldAlreadyCaptured,
        "capture amount": HoldAlreadyCaptured,
    }
    await _refused_moving_nothing(world, (world.tenant_id, other), retries, expected)


def _payout(world: World, **fields: Any) -> Payout:
    defaults: dict[str, Any] = {
        "payout_id": new_object_id(),
        "tenant_id": world.tenant_id,
        "source_currency": "EUR",
        "source_amount_minor": 10_000,
        "fee_minor": 150,
        "target_currency": "IDR",
        "target_amount_minor": 17_000_000,
    }
    return Payout(**defaults | fields)


def _payout_changes(other: int) -> dict[str, Any]:
    return {
        "tenant_id": other,
        "source_currency": "GBP",
        "source_amount_minor": 10_001,
        "fee_minor": 151,
        "target_currency": "USD",
        "target_amount_minor": 17_000_001,
    }


async def test_a_payout_reservation_retried_with_other_fields_is_refused(
    ledger_client: LedgerClient,
) -> None:
    world, other = await _world_of_two_tenants(ledger_client)
    payout = _payout(world)
    await world.payouts.reserve(payout)
    changes = _payout_changes(other) | {"fee_minor": 0}
    retries: list[Retry] = [
        (field, partial(world.payouts.reserve, changed))
        for field, changed in _changed(payout, changes)
    ]
    await _refused_moving_nothing(world, (world.tenant_id, other), retries, {})
    # Without a fee, a fee appearing on retry is a new leg in a chain already applied; a
    # same-currency payout retried as a conversion is a chain of another shape.
    no_fee = _payout(world, fee_minor=0)
    same_currency = _payout(world, target_currency="EUR", target_amount_minor=10_000)
    for payout in (no_fee, same_currency):
        await world.payouts.reserve(payout)
    with_fee = msgspec.structs.replace(no_fee, fee_minor=1)
    converting = msgspec.structs.replace(
        same_currency, target_currency="IDR", target_amount_minor=17_000_000
    )
    await _refused_moving_nothing(
        world,
        (world.tenant_id, other),
        [
            ("fee appearing", partial(world.payouts.reserve, with_fee)),
            ("conversion", partial(world.payouts.reserve, converting)),
        ],
        {},
    )


async def test_a_payouts_commit_abort_settlement_and_refund_retried_otherwise_are_refused(
    ledger_client: LedgerClient,
) -> None:
    world, other = await _world_of_two_tenants(ledger_client)
    payouts = world.payouts
    committed, aborted, refunded = (_payout(world) for _ in range(3))
    for payout in (committed, aborted, refunded):
        await payouts.reserve(payout)
    await payouts.commit(committed)
    await payouts.settle(committed)
    await payouts.abort(aborted)
    await payouts.commit(refunded)
    await payouts.refund(refunded)
    # Commit and abort post or void whatever the reservation holds and name no amounts; what
    # they name is the accounts (tenant, currencies) and which legs there are (the fee's).
    shape = {
        "tenant_id": other,
        "source_currency": "GBP",
        "target_currency": "USD",
        "fee_minor": 0,
    }
    same_currency = {"target_currency": "EUR", "target_amount_minor": 10_000}
    retries: list[Retry] = []
    for step, payout, action in (
        ("commit", committed, payouts.commit),
        ("abort", aborted, payouts.abort),
    ):
        for field, changed in _changed(payout, shape):
            retries.append((f"{step} {field}", partial(action, changed)))
        changed_shape = msgspec.structs.replace(payout, **same_currency)
        retries.append((f"{step} shape", partial(action, changed_shape)))
    settlement = {"tenant_id": other, "target_currency": "USD", "target_amount_minor": 17_000_001}
    for field, changed in _changed(committed, settlement):
        retries.append((f"settle {field}", partial(payouts.settle, changed)))
    for field, changed in _changed(refunded, _payout_changes(other) | {"fee_minor": 149}):
        retries.append((f"refund {field}", partial(payouts.refund, changed)))
    retries.append(("refund fee", partial(payouts.refund, refunded, refund_fee=False)))
    await _refused_moving_nothing(world, (world.tenant_id, other), retries, {})
    # Retried as they were, they are what they were.
    await payouts.commit(committed)
    await payouts.settle(committed)
    await payouts.abort(aborted)
    await payouts.refund(refunded)


def _item(world: World) -> NettedItem:
    return NettedItem(
        item_id=new_object_id(),
        tenant_id=world.tenant_id,
        source_currency="EUR",
        source_amount_minor=10_000,
        fee_minor=150,
        target_currency="IDR",
        target_amount_minor=17_000_000,
    )


async def _submitted(netting: Netting, chain: list[Any]) -> None:
    (error,) = await netting.submit_chains([linked(chain)])
    if error is not None:
        raise error


async def test_a_batch_pair_and_its_items_retried_with_other_fields_are_refused(
    ledger_client: LedgerClient,
) -> None:
    world, other = await _world_of_two_tenants(ledger_client)
    netting = Netting(world.ledger)
    items = [_item(world) for _ in range(3)]
    pair = NettedPair(
        batch_id=new_object_id(),
        tenant_id=world.tenant_id,
        source_currency="EUR",
        target_currency="IDR",
        source_amount_minor=30_000,
        fee_minor=450,
        target_amount_minor=51_000_000,
    )
    await _submitted(netting, netting.pair_chain(pair))
    held, committed, aborted = (payout_of_item(item) for item in items)
    for payout in (held, committed, aborted):
        await world.payouts.reserve(payout)
    await world.payouts.commit(committed)
    await world.payouts.abort(aborted)
    # The pair's currencies are part of its chain's id (another pair of the same batch).
    pair_changes = {
        "tenant_id": other,
        "source_amount_minor": 30_001,
        "fee_minor": 451,
        "target_amount_minor": 51_000_001,
    }
    retries: list[Retry] = [
        (f"pair {field}", partial(_submitted, netting, netting.pair_chain(changed)))
        for field, changed in _changed(pair, pair_changes)
    ]
    # An item's holds name its source and fee; its abort also returns its target amount.
    item_changes = {
        "tenant_id": other,
        "source_currency": "GBP",
        "source_amount_minor": 10_001,
        "fee_minor": 151,
    }
    for field, changed in _changed(held, item_changes | {"fee_minor": 0}):
        retries.append((f"item hold {field}", partial(world.payouts.reserve, changed)))
    for field, changed in _changed(committed, {"tenant_id": other, "fee_minor": 0}):
        retries.append((f"item commit {field}", partial(world.payouts.commit, changed)))
    abort_changes = item_changes | {"target_currency": "USD", "target_amount_minor": 17_000_001}
    for field, changed in _changed(aborted, abort_changes):
        retries.append((f"item abort {field}", partial(world.payouts.abort, changed)))
    await _refused_moving_nothing(world, (world.tenant_id, other), retries, {})
    await _submitted(netting, netting.pair_chain(pair))
    await world.payouts.abort(aborted)


async def test_a_chain_that_fails_on_a_transfer_that_exists_is_not_applied(
    ledger_client: LedgerClient,
) -> None:
    """A chain whose first transfer is new and a later one exists was rolled back at the one
    that exists: its ids were used for another chain, which is a conflict, never a success."""
    world, other = await _world_of_two_tenants(ledger_client)
    netting = Netting(world.ledger)
    wallet = world.ledger.wallet_id(world.tenant_id, world.ledger.currencies.get("EUR"))
    outbound = tenant_account_id(world.tenant_id, AccountType.PENDING_OUTBOUND, 978)

    def transfer(transfer_id: int) -> tb.Transfer:
        return tb.Transfer(
            id=transfer_id,
            debit_account_id=wallet,
            credit_account_id=outbound,
            amount=100,
            ledger=978,
            code=TransferCode.HOLD,
            user_data_128=transfer_id,
        )

    first, shared = transfer(new_object_id()), transfer(new_object_id())
    await _submitted(netting, [first, shared])
    another_first = transfer(new_object_id())
    await _refused_moving_nothing(
        world,
        (world.tenant_id, other),
        [("first transfer", partial(_submitted, netting, [another_first, shared]))],
        {},
    )
