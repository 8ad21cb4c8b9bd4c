"""Collections in the ledger through `ledger.collections.CollectionsLedger`: a collection
credits its tenant's wallet once however often it is repeated; a return takes back what the
wallet has and books the rest as a shortfall on suspense, so the wallet never goes negative
and the settlement account mirrors the bank's full return; a return resumed after a crash
between its two legs completes with the same amounts; a return of a collection never
credited is refused and moves nothing; state is rebuilt from the ledger alone; a batch costs
one request per step; and, over random sequences of credits, spending and returns (each
repeated at random), the balances always match a model of them.
Runs on the embedded engine, the ledger server and, with TB_ADDRESSES, a real cluster."""

from __future__ import annotations

import dataclasses

import hypothesis.strategies as st
import msgspec
import pytest
import tigerbeetle as tb
from hypothesis import HealthCheck, given, settings

from ledger.accounts import AccountType, platform_account_id
from ledger.clients import LedgerClient
from ledger.collections import (
    CollectionLedgerState,
    CollectionLedgerStatus,
    CollectionMovement,
    CollectionsLedger,
    Reversal,
)
from ledger.errors import (
    CollectionNotCredited,
    CurrencyNotEnabled,
    InvalidAmount,
    LedgerIdConflict,
    LedgerUnavailable,
)
from ledger.service import Ledger, Posted
from ledger.transfers import Leg, new_object_id, transfer_id
from tests.ledger.fixtures import CountingClient, World, make_world

eur = 978


def _movement(tenant_id: int, amount_minor: int, currency: str = "EUR") -> CollectionMovement:
    return CollectionMovement(
        collection_id=new_object_id(),
        tenant_id=tenant_id,
        currency_code=currency,
        amount_minor=amount_minor,
    )


class PlatformView:
    """The platform's settlement and suspense accounts in EUR, as movements since `start`
    (a real cluster shares them between tests)."""

    def __init__(self, client: LedgerClient) -> None:
        self._client = client
        self._baseline: dict[AccountType, int] = {}

    async def _debit_balance(self, account_type: AccountType) -> int:
        (found,) = await self._client.lookup_accounts([platform_account_id(account_type, eur)])
        return found.debits_posted - found.credits_posted

    async def start(self) -> PlatformView:
        for account_type in (AccountType.REGIONAL_SETTLEMENT, AccountType.SUSPENSE):
            self._baseline[account_type] = await self._debit_balance(account_type)
        return self

    async def moved(self, account_type: AccountType) -> int:
        """The account's debit balance now minus at the start."""
        return await self._debit_balance(account_type) - self._baseline[account_type]


async def _world(client: LedgerClient) -> tuple[World, CollectionsLedger, PlatformView]:
    world = await make_world(client, {})
    return world, CollectionsLedger(world.ledger), await PlatformView(client).start()


async def _spend(world: World, tenant_id: int, amount_minor: int) -> None:
    """Money leaves the wallet (a captured hold), without touching the settlement account."""
    hold_id = new_object_id()
    await world.ledger.hold(
        tenant_id=tenant_id, hold_id=hold_id, currency_code="EUR", amount_minor=amount_minor
    )
    await world.ledger.capture_hold(tenant_id=tenant_id, hold_id=hold_id, currency_code="EUR")


async def test_a_collection_is_credited_once_however_often_it_is_repeated(
    ledger_client: LedgerClient,
) -> None:
    world, collections, platform = await _world(ledger_client)
    tenant = world.tenant_id
    movement = _movement(tenant, 12_500)
    first, again_in_the_same_batch = await collections.credit_many([movement, movement])
    assert isinstance(first, Posted)
    assert not first.existed
    assert again_in_the_same_batch == Posted(
        transfer_id=first.transfer_id, timestamp_ns=first.timestamp_ns, existed=True
    )
    (later,) = await collections.credit_many([movement])
    assert later == again_in_the_same_batch
    assert (await world.balance("EUR")).posted == 12_500
    assert await platform.moved(AccountType.REGIONAL_SETTLEMENT) == 12_500
    (stored,) = await ledger_client.lookup_transfers([first.transfer_id])
    assert (stored.user_data_128, stored.user_data_64) == (movement.collection_id, tenant)
    assert stored.id == transfer_id(object_id=movement.collection_id, leg=Leg.COLLECTION_CREDIT)


async def test_a_credit_under_the_same_collection_with_another_amount_is_a_conflict(
    ledger_client: LedgerClient,
) -> None:
    world, collections, _ = await _world(ledger_client)
    movement = _movement(world.tenant_id, 12_500)
    await collections.credit_many([movement])
    (outcome,) = await collections.credit_many(
        [msgspec.structs.replace(movement, amount_minor=12_501)]
    )
    assert isinstance(outcome, LedgerIdConflict)
    assert (await world.balance("EUR")).posted == 12_500


async def test_a_bad_movement_fails_alone(ledger_client: LedgerClient) -> None:
    world, collections, _ = await _world(ledger_client)
    good = _movement(world.tenant_id, 100)
    zero = _movement(world.tenant_id, 0)
    sek = _movement(world.tenant_id, 100, currency="SEK")
    outcomes = await collections.credit_many([zero, good, sek])
    assert isinstance(outcomes[0], InvalidAmount)
    assert isinstance(outcomes[1], Posted)
    assert isinstance(outcomes[2], CurrencyNotEnabled)
    reversals = await collections.reverse_many([zero, good, sek])
    assert isinstance(reversals[0], InvalidAmount)
    assert isinstance(reversals[1], Reversal)
    assert isinstance(reversals[2], CurrencyNotEnabled)


async def test_a_return_with_the_money_still_there_takes_it_all_back(
    ledger_client: LedgerClient,
) -> None:
    world, collections, platform = await _world(ledger_client)
    movement = _movement(world.tenant_id, 9_000)
    await collections.credit_many([movement])
    (reversal,) = await collections.reverse_many([movement])
    assert isinstance(reversal, Reversal)
    assert (reversal.reversed_minor, reversal.shortfall_minor) == (9_000, 0)
    assert (await world.balance("EUR")).posted == 0
    assert await platform.moved(AccountType.REGIONAL_SETTLEMENT) == 0
    assert await platform.moved(AccountType.SUSPENSE) == 0
    assert await collections.reverse_many([movement]) == [reversal]
    assert await collections.state_many([movement]) == [
        CollectionLedgerState(
            status=CollectionLedgerStatus.RETURNED,
            credited_minor=9_000,
            reversed_minor=9_000,
            shortfall_minor=0,
        )
    ]


async def test_a_return_after_the_money_left_books_the_exact_shortfall(
    ledger_client: LedgerClient,
) -> None:
    world, collections, platform = await _world(ledger_client)
    tenant = world.tenant_id
    movement = _movement(tenant, 10_000)
    await collections.credit_many([movement])
    await _spend(world, tenant, 7_000)
    # Twice in one batch, as a provider repeating itself within one worker pass would.
    reversal, again = await collections.reverse_many([movement, movement])
    assert isinstance(reversal, Reversal)
    assert again == reversal
    assert (reversal.reversed_minor, reversal.shortfall_minor) == (3_000, 7_000)
    wallet = await world.balance("EUR")
    assert (wallet.posted, wallet.available) == (0, 0)
    # The bank took the full 10,000 back: the settlement account says so, and suspense
    # carries the 7,000 no wallet paid.
    assert await platform.moved(AccountType.REGIONAL_SETTLEMENT) == 0
    assert await platform.moved(AccountType.SUSPENSE) == 7_000
    # Money arriving later changes nothing about a return already made.
    await collections.credit_many([_movement(tenant, 5_000)])
    assert await collections.reverse_many([movement]) == [reversal]
    assert (await world.balance("EUR")).posted == 5_000


async def test_a_return_leaves_what_holds_reserve(ledger_client: LedgerClient) -> None:
    world, collections, _ = await _world(ledger_client)
    tenant = world.tenant_id
    movement = _movement(tenant, 10_000)
    await collections.credit_many([movement])
    hold_id = new_object_id()
    await world.ledger.hold(
        tenant_id=tenant, hold_id=hold_id, currency_code="EUR", amount_minor=4_000
    )
    (reversal,) = await collections.reverse_many([movement])
    assert isinstance(reversal, Reversal)
    assert (reversal.reversed_minor, reversal.shortfall_minor) == (6_000, 4_000)
    await world.ledger.capture_hold(tenant_id=tenant, hold_id=hold_id, currency_code="EUR")
    wallet = await world.balance("EUR")
    assert (wallet.posted, wallet.pending) == (0, 0)


async def test_an_empty_wallet_gives_back_nothing_and_suspense_takes_it_all(
    ledger_client: LedgerClient,
) -> None:
    world, collections, platform = await _world(ledger_client)
    movement = _movement(world.tenant_id, 2_500)
    await collections.credit_many([movement])
    await _spend(world, world.tenant_id, 2_500)
    (reversal,) = await collections.reverse_many([movement])
    assert isinstance(reversal, Reversal)
    assert (reversal.reversed_minor, reversal.shortfall_minor) == (0, 2_500)
    assert await collections.reverse_many([movement]) == [reversal]
    assert await platform.moved(AccountType.SUSPENSE) == 2_500


class CrashAfterFirstCreate(CountingClient):
    """A real ledger client whose process 'dies' right after its first `create_transfers`
    is applied: the request reaches the ledger, the answer never comes back, and no later
    request is sent."""

    def __init__(self, inner: LedgerClient) -> None:
        super().__init__(inner)
        self.creates_left = 1

    async def create_transfers(self, transfers: list[tb.Transfer]) -> list[tb.CreateTransferResult]:
        if self.creates_left == 0:
            raise LedgerUnavailable("the process died before this request")
        self.creates_left -= 1
        await self.inner.create_transfers(transfers)
        raise LedgerUnavailable("the process died before the answer arrived")


async def test_a_return_resumed_after_a_crash_between_its_legs_completes_it_exactly(
    ledger_client: LedgerClient,
) -> None:
    world, collections, platform = await _world(ledger_client)
    tenant = world.tenant_id
    movement = _movement(tenant, 10_000)
    await collections.credit_many([movement])
    await _spend(world, tenant, 6_000)
    dying = CollectionsLedger(Ledger(CrashAfterFirstCreate(ledger_client), world.ledger.currencies))
    with pytest.raises(LedgerUnavailable):
        await dying.reverse_many([movement])
    assert await collections.state_many([movement]) == [
        CollectionLedgerState(
            status=CollectionLedgerStatus.RETURNING,
            credited_minor=10_000,
            reversed_minor=4_000,
            shortfall_minor=0,
        )
    ]
    # Before the resume, more money arrives: the wallet leg already taken stands, so the
    # shortfall stays what the return met at the time, and the new money stays put.
    await collections.credit_many([_movement(tenant, 3_000)])
    (reversal,) = await collections.reverse_many([movement])
    assert isinstance(reversal, Reversal)
    assert (reversal.reversed_minor, reversal.shortfall_minor) == (4_000, 6_000)
    assert (await world.balance("EUR")).posted == 3_000
    assert await platform.moved(AccountType.SUSPENSE) == 6_000
    assert await platform.moved(AccountType.REGIONAL_SETTLEMENT) == 3_000
    assert await collections.reverse_many([movement]) == [reversal]


async def test_a_return_of_a_collection_never_credited_is_refused_and_moves_nothing(
    ledger_client: LedgerClient,
) -> None:
    world, collections, platform = await _world(ledger_client)
    await world.ledger.deposit(
        tenant_id=world.tenant_id, deposit_id=new_object_id(), currency_code="EUR", amount_minor=700
    )
    movement = _movement(world.tenant_id, 500)
    (outcome,) = await collections.reverse_many([movement])
    assert isinstance(outcome, CollectionNotCredited)
    assert (await world.balance("EUR")).posted == 700
    assert await platform.moved(AccountType.SUSPENSE) == 0
    (state,) = await collections.state_many([movement])
    assert state.status is CollectionLedgerStatus.ABSENT
    # A return for another amount than was credited is a conflict, not a partial return.
    await collections.credit_many([movement])
    (other,) = await collections.reverse_many([msgspec.structs.replace(movement, amount_minor=400)])
    assert isinstance(other, LedgerIdConflict)
    assert (await world.balance("EUR")).posted == 1_200


async def test_state_follows_a_collection_from_absent_to_returned(
    ledger_client: LedgerClient,
) -> None:
    world, collections, _ = await _world(ledger_client)
    movement = _movement(world.tenant_id, 800)
    states = [await collections.state_many([movement])]
    await collections.credit_many([movement])
    states.append(await collections.state_many([movement]))
    await _spend(world, world.tenant_id, 300)
    await collections.reverse_many([movement])
    states.append(await collections.state_many([movement]))
    assert [
        (s.status, s.credited_minor, s.reversed_minor, s.shortfall_minor) for (s,) in states
    ] == [
        (CollectionLedgerStatus.ABSENT, 0, 0, 0),
        (CollectionLedgerStatus.CREDITED, 800, 0, 0),
        (CollectionLedgerStatus.RETURNED, 800, 500, 300),
    ]


async def test_a_batch_costs_one_request_per_step(ledger_client: LedgerClient) -> None:
    counting = CountingClient(ledger_client)
    world = await make_world(counting, {})
    collections = CollectionsLedger(world.ledger)
    tenants = [await world.new_tenant({}) for _ in range(3)]
    movements = [_movement(tenants[i % 3], 1_000 + i) for i in range(60)]
    counting.reset()
    credited = await collections.credit_many(movements)
    assert all(isinstance(outcome, Posted) for outcome in credited)
    assert (counting.create_transfers_sizes, counting.lookup_transfers_sizes) == ([60], [])
    for tenant in tenants:
        await _spend(world, tenant, 5_000)  # Every return but the last few meets a shortfall.
    counting.reset()
    reversals = await collections.reverse_many(movements)
    assert all(isinstance(outcome, Reversal) for outcome in reversals)
    assert counting.create_transfers_sizes[0] == 60
    assert len(counting.create_transfers_sizes) == 2
    assert counting.lookup_transfers_sizes == [180, 60]
    counting.reset()
    assert await collections.reverse_many(movements) == reversals
    assert (counting.create_transfers_sizes, counting.lookup_transfers_sizes) == ([], [180])
    counting.reset()
    await collections.state_many(movements)
    assert counting.lookup_transfers_sizes == [180]


# ------------------------------------------------------------------------------------------
# A property over random sequences.

operations = st.lists(
    st.one_of(
        st.tuples(st.just("collect"), st.integers(min_value=1, max_value=10_000)),
        st.tuples(st.just("spend"), st.integers(min_value=1, max_value=10_000)),
        st.tuples(st.just("return"), st.integers(min_value=0, max_value=30)),
        st.tuples(st.just("repeat"), st.integers(min_value=0, max_value=30)),
    ),
    max_size=30,
)


@dataclasses.dataclass
class Model:
    """What the ledger should say: the wallet, and each collection's return."""

    wallet: int = 0
    collections: list[CollectionMovement] = dataclasses.field(default_factory=list)
    reversals: dict[int, Reversal] = dataclasses.field(default_factory=dict)
    done: list[tuple[str, CollectionMovement]] = dataclasses.field(default_factory=list)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=operations)
async def test_balances_follow_the_model_over_credits_spending_and_returns(
    ledger_client: LedgerClient, steps: list[tuple[str, int]]
) -> None:
    world, collections, platform = await _world(ledger_client)
    tenant = await world.new_tenant({})
    model = Model()
    for kind, value in steps:
        if kind == "collect":
            await _collect(collections, model, _movement(tenant, value))
        elif kind == "spend" and value <= model.wallet:
            await _spend(world, tenant, value)
            model.wallet -= value
        elif kind == "return" and model.collections:
            await _return(collections, model, model.collections[value % len(model.collections)])
        elif kind == "repeat" and model.done:
            await _repeat(collections, model, model.done[value % len(model.done)])
        assert (await world.balance("EUR", tenant)).posted == model.wallet
    credited = sum(movement.amount_minor for movement in model.collections)
    returned = sum(
        movement.amount_minor
        for movement in model.collections
        if movement.collection_id in model.reversals
    )
    assert await platform.moved(AccountType.REGIONAL_SETTLEMENT) == credited - returned
    shortfalls = sum(reversal.shortfall_minor for reversal in model.reversals.values())
    assert await platform.moved(AccountType.SUSPENSE) == shortfalls


async def _collect(
    collections: CollectionsLedger, model: Model, movement: CollectionMovement
) -> None:
    (outcome,) = await collections.credit_many([movement])
    assert isinstance(outcome, Posted)
    model.collections.append(movement)
    model.wallet += movement.amount_minor
    model.done.append(("collect", movement))


async def _return(
    collections: CollectionsLedger, model: Model, movement: CollectionMovement
) -> None:
    (reversal,) = await collections.reverse_many([movement])
    assert isinstance(reversal, Reversal)
    assert reversal.reversed_minor + reversal.shortfall_minor == movement.amount_minor
    earlier = model.reversals.get(movement.collection_id)
    if earlier is not None:
        assert reversal == earlier
        return
    assert reversal.reversed_minor == min(movement.amount_minor, model.wallet)
    model.wallet -= reversal.reversed_minor
    model.reversals[movement.collection_id] = reversal
    model.done.append(("return", movement))


async def _repeat(
    collections: CollectionsLedger, model: Model, done: tuple[str, CollectionMovement]
) -> None:
    kind, movement = done
    if kind == "collect":
        (outcome,) = await collections.credit_many([movement])
        assert isinstance(outcome, Posted)
        assert outcome.existed
    else:
        assert await collections.reverse_many([movement]) == [
            model.reversals[movement.collection_id]
        ]
