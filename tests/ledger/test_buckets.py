"""Buckets in the ledger through `ledger.buckets.BucketsLedger`: an allocation moves the
wallet's money into each bucket as one linked chain, so one leg refused (a bucket never
opened, a wallet short of the sum) leaves nothing moved; a repeat answers `existed`; a
delivery reserves a bucket's money for its partner, then posts it to the partner's
settlement account or voids it back, and a post after a void (or a void after a post) is
refused without moving money; states and balances are rebuilt from the ledger alone; a batch
costs one request per step; and, over random sequences of deposits, allocations, deliveries
and repeats, the wallet, the buckets and the partners' accounts always add up to what was
deposited, and no bucket goes negative.
Runs on the embedded engine, the ledger server and, with TB_ADDRESSES, a real cluster."""

from __future__ import annotations

import dataclasses

import hypothesis.strategies as st
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings

from ledger.accounts import AccountType, tenant_account_id
from ledger.buckets import (
    Allocation,
    AllocationLeg,
    BucketBalance,
    BucketsLedger,
    Delivery,
    DeliveryStatus,
)
from ledger.clients import LedgerClient
from ledger.errors import (
    AccountNotOpen,
    AttemptAlreadyFailed,
    HoldAlreadyCaptured,
    HoldAlreadyVoided,
    HoldNotFound,
    InsufficientFunds,
    InvalidAmount,
)
from ledger.invariants import InvariantViolation
from ledger.service import Posted
from ledger.transfers import Leg, TransferCode, new_object_id, transfer_id
from tests.ledger.fixtures import CountingClient, World, make_world

eur = 978
partner = 7  # The partner's ledger number: its PARTNER_SETTLEMENT sub-account.


async def _world(client: LedgerClient, deposit: int = 100_000) -> tuple[World, BucketsLedger]:
    world = await make_world(client, {"EUR": deposit} if deposit else {})
    buckets = BucketsLedger(world.ledger)
    await buckets.open_buckets(
        tenant_id=world.tenant_id, currency_code="EUR", sub_accounts=[1, 2, 3]
    )
    await buckets.open_partner_accounts(
        tenant_id=world.tenant_id, currency_code="EUR", partner_sub_accounts=[partner]
    )
    return world, buckets


def _allocation(tenant_id: int, *shares: tuple[int, int]) -> Allocation:
    return Allocation(
        orchestration_id=new_object_id(),
        tenant_id=tenant_id,
        currency_code="EUR",
        legs=tuple(
            AllocationLeg(line_id=new_object_id(), bucket_sub_account=sub, amount_minor=amount)
            for sub, amount in shares
        ),
    )


def _delivery(tenant_id: int, bucket: int, amount_minor: int) -> Delivery:
    return Delivery(
        order_id=new_object_id(),
        tenant_id=tenant_id,
        currency_code="EUR",
        bucket_sub_account=bucket,
        partner_sub_account=partner,
        amount_minor=amount_minor,
    )


async def _balances(buckets: BucketsLedger, tenant_id: int) -> list[int]:
    found = await buckets.balances(tenant_id=tenant_id, currency_code="EUR", sub_accounts=[1, 2, 3])
    return [balance.balance_minor for balance in found]


async def _partner_received(client: LedgerClient, tenant_id: int) -> int:
    account_id = tenant_account_id(tenant_id, AccountType.PARTNER_SETTLEMENT, eur, partner)
    (account,) = await client.lookup_accounts([account_id])
    return account.credits_posted - account.debits_posted


async def test_an_allocation_moves_each_share_into_its_bucket_once(
    ledger_client: LedgerClient,
) -> None:
    world, buckets = await _world(ledger_client)
    tenant = world.tenant_id
    allocation = _allocation(tenant, (1, 12_345), (3, 1))
    first, again_in_the_same_batch = await buckets.allocate_many([allocation, allocation])
    assert isinstance(first, Posted)
    assert not first.existed
    assert isinstance(again_in_the_same_batch, Posted)
    assert again_in_the_same_batch.existed
    (later,) = await buckets.allocate_many([allocation])
    assert isinstance(later, Posted)
    assert later.existed
    assert await _balances(buckets, tenant) == [12_345, 0, 1]
    assert (await world.balance("EUR")).posted == 100_000 - 12_346
    legs = await ledger_client.lookup_transfers(
        [transfer_id(object_id=leg.line_id, leg=Leg.BUCKET_ALLOCATION) for leg in allocation.legs]
    )
    assert [(t.user_data_128, t.user_data_64, t.code) for t in legs] == [
        (allocation.orchestration_id, tenant, TransferCode.BUCKET_ALLOCATION)
    ] * 2
    assert await buckets.allocation_states([allocation, _allocation(tenant, (1, 5))]) == [
        True,
        False,
    ]


async def test_one_leg_refused_leaves_the_whole_chain_unapplied(
    ledger_client: LedgerClient,
) -> None:
    world, buckets = await _world(ledger_client)
    tenant = world.tenant_id
    # Bucket 9 was never opened: its leg fails, and the legs before it roll back with it.
    allocation = _allocation(tenant, (1, 100), (2, 200), (9, 300))
    (outcome,) = await buckets.allocate_many([allocation])
    assert isinstance(outcome, AccountNotOpen)
    assert await _balances(buckets, tenant) == [0, 0, 0]
    assert (await world.balance("EUR")).posted == 100_000
    assert await buckets.allocation_states([allocation]) == [False]


async def test_a_wallet_short_of_the_sum_is_insufficient_funds_and_moves_nothing(
    ledger_client: LedgerClient,
) -> None:
    world, buckets = await _world(ledger_client, deposit=1_000)
    tenant = world.tenant_id
    # Each share fits the wallet; their sum does not.
    short = _allocation(tenant, (1, 600), (2, 600))
    fits = _allocation(tenant, (3, 400))
    outcomes = await buckets.allocate_many([short, fits])
    assert isinstance(outcomes[0], InsufficientFunds)
    assert outcomes[0].code == "insufficient_funds"
    assert isinstance(outcomes[1], Posted)  # One refused allocation fails alone.
    assert await _balances(buckets, tenant) == [0, 0, 400]
    assert (await world.balance("EUR")).posted == 600
    # TigerBeetle remembers the refused leg: the same allocation never applies later.
    await world.ledger.deposit(
        tenant_id=tenant, deposit_id=new_object_id(), currency_code="EUR", amount_minor=5_000
    )
    (retried,) = await buckets.allocate_many([short])
    assert isinstance(retried, AttemptAlreadyFailed)
    assert await _balances(buckets, tenant) == [0, 0, 400]


async def test_bad_allocations_are_refused_before_any_request(ledger_client: LedgerClient) -> None:
    world, buckets = await _world(ledger_client)
    empty = Allocation(
        orchestration_id=new_object_id(), tenant_id=world.tenant_id, currency_code="EUR", legs=()
    )
    zero = _allocation(world.tenant_id, (1, 0))
    outcomes = await buckets.allocate_many([empty, zero])
    assert [type(outcome) for outcome in outcomes] == [InvalidAmount, InvalidAmount]
    assert await buckets.allocation_states([empty]) == [False]


async def test_a_delivery_is_reserved_then_posted_to_the_partner(
    ledger_client: LedgerClient,
) -> None:
    world, buckets = await _world(ledger_client)
    tenant = world.tenant_id
    await buckets.allocate_many([_allocation(tenant, (1, 10_000))])
    delivery = _delivery(tenant, 1, 7_500)
    assert await buckets.delivery_states([delivery]) == [DeliveryStatus.ABSENT]
    (reserved,) = await buckets.reserve_many([delivery])
    assert isinstance(reserved, Posted)
    assert await buckets.delivery_states([delivery]) == [DeliveryStatus.RESERVED]
    (balance,) = await buckets.balances(tenant_id=tenant, currency_code="EUR", sub_accounts=[1])
    assert balance == BucketBalance(
        sub_account=1,
        allocated_minor=10_000,
        delivered_minor=0,
        pending_delivery_minor=7_500,
        balance_minor=10_000,
    )
    # The reserved money cannot be reserved again for another order.
    (second,) = await buckets.reserve_many([_delivery(tenant, 1, 2_501)])
    assert isinstance(second, InsufficientFunds)
    posted, again = await buckets.post_many([delivery, delivery])
    assert isinstance(posted, Posted)
    assert isinstance(again, Posted)
    assert again.existed
    assert await buckets.delivery_states([delivery]) == [DeliveryStatus.POSTED]
    (balance,) = await buckets.balances(tenant_id=tenant, currency_code="EUR", sub_accounts=[1])
    assert (balance.balance_minor, balance.delivered_minor, balance.pending_delivery_minor) == (
        2_500,
        7_500,
        0,
    )
    assert await _partner_received(ledger_client, tenant) == 7_500
    (stored,) = await ledger_client.lookup_transfers([reserved.transfer_id])
    assert (stored.user_data_128, stored.code) == (delivery.order_id, TransferCode.PARTNER_DELIVERY)
    # A post after the post is the same post; a void after it is refused and moves nothing.
    (void,) = await buckets.void_many([delivery])
    assert isinstance(void, HoldAlreadyCaptured)
    assert await _partner_received(ledger_client, tenant) == 7_500
    assert await buckets.delivery_states([delivery]) == [DeliveryStatus.POSTED]


async def test_a_voided_delivery_leaves_the_money_in_its_bucket_and_cannot_be_posted(
    ledger_client: LedgerClient,
) -> None:
    world, buckets = await _world(ledger_client)
    tenant = world.tenant_id
    await buckets.allocate_many([_allocation(tenant, (2, 3_000))])
    delivery = _delivery(tenant, 2, 3_000)
    await buckets.reserve_many([delivery])
    voided, again = await buckets.void_many([delivery, delivery])
    assert isinstance(voided, Posted)
    assert isinstance(again, Posted)
    assert again.existed
    assert await buckets.delivery_states([delivery]) == [DeliveryStatus.VOIDED]
    (post,) = await buckets.post_many([delivery])
    assert isinstance(post, HoldAlreadyVoided)
    assert await _balances(buckets, tenant) == [0, 3_000, 0]
    assert await _partner_received(ledger_client, tenant) == 0
    (balance,) = await buckets.balances(tenant_id=tenant, currency_code="EUR", sub_accounts=[2])
    assert balance.pending_delivery_minor == 0
    # A post or void of an order never reserved is refused.
    never = _delivery(tenant, 2, 100)
    assert [type(o) for o in await buckets.post_many([never])] == [HoldNotFound]
    assert await buckets.delivery_states([never]) == [DeliveryStatus.ABSENT]


async def test_a_delivery_from_another_bucket_cannot_post_this_reservation(
    ledger_client: LedgerClient,
) -> None:
    world, buckets = await _world(ledger_client)
    tenant = world.tenant_id
    await buckets.allocate_many([_allocation(tenant, (1, 1_000), (2, 1_000))])
    delivery = _delivery(tenant, 1, 1_000)
    await buckets.reserve_many([delivery])
    elsewhere = msgspec.structs.replace(delivery, bucket_sub_account=2)
    (outcome,) = await buckets.post_many([elsewhere])
    assert isinstance(outcome, HoldNotFound)
    assert await buckets.delivery_states([delivery]) == [DeliveryStatus.RESERVED]


async def test_a_batch_costs_one_request_per_step(ledger_client: LedgerClient) -> None:
    counting = CountingClient(ledger_client)
    world = await make_world(counting, {"EUR": 1_000_000})
    buckets = BucketsLedger(world.ledger)
    tenant = world.tenant_id
    await buckets.open_buckets(tenant_id=tenant, currency_code="EUR", sub_accounts=[1, 2, 3])
    await buckets.open_partner_accounts(
        tenant_id=tenant, currency_code="EUR", partner_sub_accounts=[partner]
    )
    allocations = [_allocation(tenant, (1, 100), (2, 50), (3, 25)) for _ in range(20)]
    deliveries = [_delivery(tenant, 1, 10) for _ in range(20)]
    counting.reset()
    assert all(isinstance(o, Posted) for o in await buckets.allocate_many(allocations))
    assert all(isinstance(o, Posted) for o in await buckets.reserve_many(deliveries))
    assert all(isinstance(o, Posted) for o in await buckets.post_many(deliveries))
    assert (counting.create_transfers_sizes, counting.lookup_transfers_sizes) == ([60, 20, 20], [])
    counting.reset()
    await buckets.allocation_states(allocations)
    await buckets.delivery_states(deliveries)
    assert counting.lookup_transfers_sizes == [60, 60]
    counting.reset()
    # A repeat costs its request and one lookup to compare what the ledger holds.
    assert all(
        isinstance(o, Posted) and o.existed for o in await buckets.allocate_many(allocations)
    )
    assert counting.create_transfers_sizes == [60]
    assert len(counting.lookup_transfers_sizes) == 1


# ------------------------------------------------------------------------------------------
# A property over random sequences.

steps = st.lists(
    st.one_of(
        st.tuples(st.just("deposit"), st.integers(min_value=1, max_value=20_000), st.just(0)),
        st.tuples(
            st.just("allocate"),
            st.integers(min_value=1, max_value=4_000),
            st.integers(min_value=1, max_value=7),  # Which buckets: a bit per bucket.
        ),
        st.tuples(
            st.just("deliver"),
            st.integers(min_value=1, max_value=3_000),
            st.integers(min_value=0, max_value=5),  # The bucket, and post (even) or void.
        ),
        st.tuples(st.just("repeat"), st.integers(min_value=0, max_value=40), st.just(0)),
    ),
    max_size=25,
)


@dataclasses.dataclass
class Model:
    deposited: int = 0
    wallet: int = 0
    buckets: list[int] = dataclasses.field(default_factory=lambda: [0, 0, 0])
    partner: int = 0
    done: list[tuple[str, Allocation | Delivery]] = dataclasses.field(default_factory=list)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(operations=steps)
async def test_money_adds_up_over_allocations_and_deliveries(
    ledger_client: LedgerClient, operations: list[tuple[str, int, int]]
) -> None:
    world, buckets = await _world(ledger_client, deposit=0)
    tenant = world.tenant_id
    model = Model()
    for kind, amount, choice in operations:
        if kind == "deposit":
            await world.ledger.deposit(
                tenant_id=tenant,
                deposit_id=new_object_id(),
                currency_code="EUR",
                amount_minor=amount,
            )
            model.deposited += amount
            model.wallet += amount
        elif kind == "allocate":
            await _allocate(buckets, model, tenant, amount, choice)
        elif kind == "deliver":
            await _deliver(buckets, model, _delivery(tenant, choice % 3 + 1, amount), choice)
        elif kind == "repeat" and model.done:
            await _repeat(buckets, model.done[amount % len(model.done)])
        found = await buckets.balances(
            tenant_id=tenant, currency_code="EUR", sub_accounts=[1, 2, 3]
        )
        assert [b.balance_minor for b in found] == model.buckets
        assert all(b.balance_minor - b.pending_delivery_minor >= 0 for b in found)
        wallet = (await world.balance("EUR", tenant)).posted
        partner_received = await _partner_received(ledger_client, tenant)
        assert (wallet, partner_received) == (model.wallet, model.partner)
        assert wallet + sum(b.balance_minor for b in found) + partner_received == model.deposited


async def _allocate(
    buckets: BucketsLedger, model: Model, tenant: int, amount: int, which: int
) -> None:
    chosen = [sub for sub in (1, 2, 3) if which & (1 << (sub - 1))]
    allocation = _allocation(tenant, *((sub, amount) for sub in chosen))
    (outcome,) = await buckets.allocate_many([allocation])
    if amount * len(chosen) > model.wallet:
        assert isinstance(outcome, InsufficientFunds)
        return
    assert isinstance(outcome, Posted)
    model.wallet -= amount * len(chosen)
    for sub in chosen:
        model.buckets[sub - 1] += amount
    model.done.append(("allocate", allocation))


async def _deliver(buckets: BucketsLedger, model: Model, delivery: Delivery, choice: int) -> None:
    (reserved,) = await buckets.reserve_many([delivery])
    index = delivery.bucket_sub_account - 1
    if delivery.amount_minor > model.buckets[index]:
        assert isinstance(reserved, InsufficientFunds)
        return
    assert isinstance(reserved, Posted)
    if choice % 2 == 0:
        (posted,) = await buckets.post_many([delivery])
        assert isinstance(posted, Posted)
        model.buckets[index] -= delivery.amount_minor
        model.partner += delivery.amount_minor
        model.done.append(("post", delivery))
    else:
        (voided,) = await buckets.void_many([delivery])
        assert isinstance(voided, Posted)
        model.done.append(("void", delivery))


async def _repeat(buckets: BucketsLedger, done: tuple[str, Allocation | Delivery]) -> None:
    kind, item = done
    if isinstance(item, Allocation):
        outcomes = await buckets.allocate_many([item])
    elif kind == "post":
        outcomes = [*await buckets.post_many([item]), *await buckets.void_many([item])]
    else:
        outcomes = [*await buckets.void_many([item]), *await buckets.post_many([item])]
    first, *refused = outcomes
    assert isinstance(first, Posted)
    assert first.existed
    # The opposite resolution of a delivery already resolved is refused and moves nothing.
    assert all(isinstance(o, HoldAlreadyCaptured | HoldAlreadyVoided) for o in refused)


@pytest.mark.parametrize("sub_account", [0, 2**32])
async def test_a_sub_account_out_of_range_is_a_bug(
    ledger_client: LedgerClient, sub_account: int
) -> None:
    world, buckets = await _world(ledger_client)
    with pytest.raises(InvariantViolation):
        await buckets.open_buckets(
            tenant_id=world.tenant_id, currency_code="EUR", sub_accounts=[sub_account]
        )
