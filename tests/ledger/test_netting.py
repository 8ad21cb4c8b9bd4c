"""Batches in the ledger (`ledger.netting`): one conversion chain per pair moves the totals,
each item holds its own share and is committed and settled, or aborted with the wallet made
whole for that item alone; a pair the wallet cannot fund moves nothing; retries move
nothing twice; reversing an unrecorded batch's chains restores every balance.
Runs on the embedded engine, the ledger server and, with TB_ADDRESSES, a real cluster."""

from __future__ import annotations

from ledger.accounts import AccountType, platform_account_id
from ledger.clients import LedgerClient
from ledger.errors import InsufficientFunds, InsufficientLiquidity
from ledger.netting import NettedItem, NettedPair, Netting
from ledger.payouts import PayoutState
from ledger.service import amount_minor_max
from ledger.transfers import linked, new_object_id
from tests.ledger.fixtures import World, make_world, payout_of_item


def _items(world: World, batch_id: int, shares: list[tuple[int, int, int]]) -> list[NettedItem]:
    return [
        NettedItem(
            item_id=new_object_id() + index,
            tenant_id=world.tenant_id,
            source_currency="EUR",
            source_amount_minor=source,
            fee_minor=fee,
            target_currency="IDR",
            target_amount_minor=target,
        )
        for index, (source, fee, target) in enumerate(shares)
    ]


def _pair(world: World, batch_id: int, items: list[NettedItem]) -> NettedPair:
    return NettedPair(
        batch_id=batch_id,
        tenant_id=world.tenant_id,
        source_currency=items[0].source_currency,
        target_currency=items[0].target_currency,
        source_amount_minor=sum(i.source_amount_minor for i in items),
        fee_minor=sum(i.fee_minor for i in items),
        target_amount_minor=sum(i.target_amount_minor for i in items),
    )


async def _fx_position(world: World, currency_number: int) -> int:
    (account,) = await world.ledger.client.lookup_accounts(
        [platform_account_id(AccountType.FX_POSITION, currency_number)]
    )
    return int(account.credits_posted - account.debits_posted - account.debits_pending)


async def _accept(world: World, netting: Netting, batch_id: int, items: list[NettedItem]) -> None:
    await netting.open_clearing_accounts(world.tenant_id, {"EUR"})
    (error,) = await netting.submit_chains(
        [linked(netting.pair_chain(_pair(world, batch_id, items)))]
    )
    assert error is None
    assert await netting.submit_chains([netting.item_reservation(i) for i in items]) == [
        None
    ] * len(items)


async def test_items_settle_or_return_on_their_own(ledger_client: LedgerClient) -> None:
    world = await make_world(ledger_client, {"EUR": 1_000_000})
    await world.ledger.fund_liquidity(
        funding_id=new_object_id(), currency_code="IDR", amount_minor=10**12
    )
    netting = Netting(world.ledger)
    batch_id = new_object_id()
    items = _items(world, batch_id, [(10_000, 150, 17_000_000), (20_001, 301, 34_001_700)])
    liquidity_before = await _fx_position(world, 360)
    await _accept(world, netting, batch_id, items)
    wallet = await world.balance("EUR")
    spent = sum(i.source_amount_minor + i.fee_minor for i in items)
    assert (wallet.posted, wallet.pending) == (1_000_000 - spent, 0)
    assert await _fx_position(world, 360) == liquidity_before - 51_001_700

    completed, rejected = (payout_of_item(i) for i in items)
    await world.payouts.commit(completed)
    await world.payouts.settle(completed)
    await world.payouts.abort(rejected)
    assert await world.payouts.state(completed) is PayoutState.SETTLED
    assert await world.payouts.state(rejected) is PayoutState.ABORTED
    # The wallet is whole for the rejected item; the completed one stays spent.
    wallet = await world.balance("EUR")
    assert wallet.posted == 1_000_000 - 10_000 - 150
    assert await _fx_position(world, 360) == liquidity_before - 17_000_000
    # The clearing account is empty once every item ended.
    (clearing,) = await world.ledger.client.lookup_accounts(
        [netting.clearing_id(world.tenant_id, "EUR")]
    )
    assert clearing.credits_posted - clearing.debits_posted == 0
    assert clearing.debits_pending == 0
    # Retries change nothing.
    await world.payouts.abort(rejected)
    await world.payouts.commit(completed)
    await _accept(world, netting, batch_id, items)
    assert (await world.balance("EUR")).posted == 1_000_000 - 10_150


async def test_an_unfunded_pair_moves_nothing(ledger_client: LedgerClient) -> None:
    world = await make_world(ledger_client, {"EUR": 10_000})
    await world.ledger.fund_liquidity(
        funding_id=new_object_id(), currency_code="IDR", amount_minor=10**12
    )
    netting = Netting(world.ledger)
    await netting.open_clearing_accounts(world.tenant_id, {"EUR"})
    batch_id = new_object_id()
    items = _items(world, batch_id, [(6_000, 0, 10_000_000), (6_000, 0, 10_000_000)])
    (error,) = await netting.submit_chains(
        [linked(netting.pair_chain(_pair(world, batch_id, items)))]
    )
    assert isinstance(error, InsufficientFunds)
    assert (await world.balance("EUR")).posted == 10_000


async def test_liquidity_is_checked_once_for_the_pair(ledger_client: LedgerClient) -> None:
    world = await make_world(ledger_client, {"EUR": 10**9})
    netting = Netting(world.ledger)
    await netting.open_clearing_accounts(world.tenant_id, {"EUR"})
    batch_id = new_object_id()
    # More than the platform's position could hold: a real cluster is shared by every test
    # run, and its GBP position grows with each run's liquidity funding.
    items = [
        NettedItem(
            item_id=new_object_id(),
            tenant_id=world.tenant_id,
            source_currency="EUR",
            source_amount_minor=1_000,
            fee_minor=0,
            target_currency="GBP",
            target_amount_minor=amount_minor_max,
        )
    ]
    (error,) = await netting.submit_chains(
        [linked(netting.pair_chain(_pair(world, batch_id, items)))]
    )
    assert isinstance(error, InsufficientLiquidity)
    assert (await world.balance("EUR")).posted == 10**9


async def test_reversing_an_unrecorded_batch_restores_every_balance(
    ledger_client: LedgerClient,
) -> None:
    world = await make_world(ledger_client, {"EUR": 1_000_000})
    await world.ledger.fund_liquidity(
        funding_id=new_object_id(), currency_code="IDR", amount_minor=10**12
    )
    netting = Netting(world.ledger)
    await netting.open_clearing_accounts(world.tenant_id, {"EUR"})
    batch_id = new_object_id()
    items = _items(world, batch_id, [(10_000, 100, 17_000_000), (5, 1, 8_500)])
    liquidity_before = await _fx_position(world, 360)
    # The process died after the pair chain, before the items' holds.
    chain = netting.pair_chain(_pair(world, batch_id, items))
    assert await netting.submit_chains([linked(chain)]) == [None]
    assert (await world.balance("EUR")).posted == 1_000_000 - 10_106
    legs = await world.ledger.client.lookup_transfers([t.id for t in chain])
    assert len(legs) == 3
    for _ in range(2):  # A repair run twice reverses once.
        outcomes = await netting.submit_chains([[Netting.reversal(leg)] for leg in legs])
        assert outcomes == [None] * len(legs)
    assert (await world.balance("EUR")).posted == 1_000_000
    assert await _fx_position(world, 360) == liquidity_before
