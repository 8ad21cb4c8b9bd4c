"""Payouts through `ledger.payouts.Payouts`: the SPEC §4 linked chain with its fee leg,
reserved then committed or aborted, settled or refunded, a reservation voided by the
reconciler never taken for held again, state rebuilt from the ledger alone, and
insufficient funds told apart from insufficient platform liquidity.
Runs on the embedded engine and, with TB_ADDRESSES, on a real cluster."""

from __future__ import annotations

import pytest

from ledger.accounts import AccountType, platform_account_id
from ledger.clients import LedgerClient
from ledger.errors import (
    HoldAlreadyCaptured,
    InsufficientFunds,
    InsufficientLiquidity,
    ReservationReleased,
)
from ledger.payouts import Payout, PayoutState
from ledger.transfers import new_object_id
from tests.ledger.fixtures import World, make_world


def _payout(world: World, **fields: object) -> Payout:
    values: dict[str, object] = {
        "payout_id": new_object_id(),
        "tenant_id": world.tenant_id,
        "source_currency": "EUR",
        "source_amount_minor": 10_000,
        "fee_minor": 150,
        "target_currency": "IDR",
        "target_amount_minor": 17_250_000,
    }
    values.update(fields)
    return Payout(**values)  # type: ignore[arg-type]


Balances = tuple[int, int, int, int]  # debits pending/posted, credits pending/posted


class PlatformView:
    """Platform accounts are shared by every test on a real cluster: compare movements only."""

    def __init__(self, world: World) -> None:
        self._world = world
        self._baseline: dict[tuple[AccountType, int], Balances] = {}

    async def _read(self, account_type: AccountType, currency_number: int) -> Balances:
        (found,) = await self._world.ledger.client.lookup_accounts(
            [platform_account_id(account_type, currency_number)]
        )
        return (
            found.debits_pending,
            found.debits_posted,
            found.credits_pending,
            found.credits_posted,
        )

    async def start(self) -> PlatformView:
        for account_type in (
            AccountType.FX_POSITION,
            AccountType.FEE_REVENUE,
            AccountType.REGIONAL_SETTLEMENT,
        ):
            for currency_number in (978, 360):
                self._baseline[(account_type, currency_number)] = await self._read(
                    account_type, currency_number
                )
        return self

    async def moved(self, account_type: AccountType, currency_number: int) -> Balances:
        now = await self._read(account_type, currency_number)
        before = self._baseline[(account_type, currency_number)]
        return (now[0] - before[0], now[1] - before[1], now[2] - before[2], now[3] - before[3])


async def _funded_world(client: LedgerClient) -> tuple[World, PlatformView]:
    world = await make_world(client, {"EUR": 50_000})
    platform = await PlatformView(world).start()
    await world.ledger.fund_liquidity(
        funding_id=new_object_id(), currency_code="IDR", amount_minor=100_000_000
    )
    return world, platform


async def test_a_cross_currency_payout_reserves_then_commits(ledger_client: LedgerClient) -> None:
    world, platform = await _funded_world(ledger_client)
    payout = _payout(world)
    assert await world.payouts.state(payout) is PayoutState.ABSENT
    await world.payouts.reserve(payout)
    await world.payouts.reserve(payout)  # Retried: still one reservation.
    assert await world.payouts.state(payout) is PayoutState.RESERVED
    held = await world.balance("EUR")
    assert (held.posted, held.pending, held.available) == (50_000, 10_150, 39_850)
    assert await platform.moved(AccountType.FX_POSITION, 360) == (17_250_000, 0, 0, 100_000_000)
    await world.payouts.commit(payout)
    await world.payouts.commit(payout)
    assert await world.payouts.state(payout) is PayoutState.COMMITTED
    spent = await world.balance("EUR")
    assert (spent.posted, spent.pending) == (39_850, 0)
    assert await platform.moved(AccountType.FX_POSITION, 978) == (0, 0, 0, 10_000)
    assert await platform.moved(AccountType.FEE_REVENUE, 978) == (0, 0, 0, 150)
    assert await platform.moved(AccountType.FX_POSITION, 360) == (0, 17_250_000, 0, 100_000_000)
    with pytest.raises(HoldAlreadyCaptured):
        await world.payouts.abort(payout)
    await world.payouts.settle(payout)
    assert await world.payouts.state(payout) is PayoutState.SETTLED
    settlement = await platform.moved(AccountType.REGIONAL_SETTLEMENT, 360)
    assert settlement == (0, 100_000_000, 0, 17_250_000)


async def test_an_aborted_payout_restores_everything(ledger_client: LedgerClient) -> None:
    world, platform = await _funded_world(ledger_client)
    payout = _payout(world)
    await world.payouts.reserve(payout)
    await world.payouts.abort(payout)
    await world.payouts.abort(payout)
    assert await world.payouts.state(payout) is PayoutState.ABORTED
    balance = await world.balance("EUR")
    assert (balance.posted, balance.pending, balance.available) == (50_000, 0, 50_000)
    assert await platform.moved(AccountType.FX_POSITION, 360) == (0, 0, 0, 100_000_000)
    assert await platform.moved(AccountType.FEE_REVENUE, 978) == (0, 0, 0, 0)


async def test_reserving_again_after_a_void_is_refused(ledger_client: LedgerClient) -> None:
    """An earlier attempt reserved the payout and its hold was voided (the reconciler does
    this when the transfer's row never came). Reserving the same payout again finds every
    leg in place, so the ledger answers `exists`: the retry must be refused, not told its
    funds are held."""
    world, _ = await _funded_world(ledger_client)
    payout = _payout(world)
    await world.payouts.reserve(payout)
    await world.payouts.abort(payout)
    with pytest.raises(ReservationReleased):
        await world.payouts.reserve(payout)
    assert await world.payouts.state(payout) is PayoutState.ABORTED
    balance = await world.balance("EUR")
    assert (balance.posted, balance.pending, balance.available) == (50_000, 0, 50_000)


async def test_a_refund_makes_the_wallet_whole_to_the_minor_unit(
    ledger_client: LedgerClient,
) -> None:
    world, platform = await _funded_world(ledger_client)
    payout = _payout(world)
    await world.payouts.reserve(payout)
    await world.payouts.commit(payout)
    await world.payouts.refund(payout)
    await world.payouts.refund(payout)
    assert await world.payouts.state(payout) is PayoutState.REFUNDED
    balance = await world.balance("EUR")
    assert (balance.posted, balance.pending, balance.available) == (50_000, 0, 50_000)
    fx_eur = await platform.moved(AccountType.FX_POSITION, 978)
    assert fx_eur[3] - fx_eur[1] == 0
    fx_idr = await platform.moved(AccountType.FX_POSITION, 360)
    assert fx_idr[3] - fx_idr[1] == 100_000_000


async def test_funds_and_liquidity_shortfalls_are_distinct(ledger_client: LedgerClient) -> None:
    world, platform = await _funded_world(ledger_client)
    with pytest.raises(InsufficientFunds):
        await world.payouts.reserve(_payout(world, source_amount_minor=49_900))
    (position,) = await world.ledger.client.lookup_accounts(
        [platform_account_id(AccountType.FX_POSITION, 360)]
    )
    liquidity = position.credits_posted - position.debits_posted - position.debits_pending
    with pytest.raises(InsufficientLiquidity):
        await world.payouts.reserve(_payout(world, target_amount_minor=liquidity + 1))
    balance = await world.balance("EUR")
    assert (balance.posted, balance.pending) == (50_000, 0)
    assert await platform.moved(AccountType.FX_POSITION, 360) == (0, 0, 0, 100_000_000)


async def test_a_same_currency_payout_has_no_exchange_legs(ledger_client: LedgerClient) -> None:
    world, platform = await _funded_world(ledger_client)
    payout = _payout(world, target_currency="EUR", target_amount_minor=10_000)
    await world.payouts.reserve(payout)
    await world.payouts.commit(payout)
    balance = await world.balance("EUR")
    assert balance.posted == 50_000 - 10_150
    assert await platform.moved(AccountType.FX_POSITION, 978) == (0, 0, 0, 0)
    assert await platform.moved(AccountType.FEE_REVENUE, 978) == (0, 0, 0, 150)
    await world.payouts.settle(payout)
    assert await platform.moved(AccountType.REGIONAL_SETTLEMENT, 978) == (0, 0, 0, 10_000)


async def test_a_payout_without_fee(ledger_client: LedgerClient) -> None:
    world, _ = await _funded_world(ledger_client)
    payout = _payout(world, fee_minor=0)
    await world.payouts.reserve(payout)
    await world.payouts.commit(payout)
    assert (await world.balance("EUR")).posted == 40_000
