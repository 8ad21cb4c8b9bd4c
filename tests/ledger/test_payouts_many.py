"""Payouts in batches (`Payouts.commit_many`, `abort_many`, `settle_many` and
`commit_and_settle_many`) answer, payout by payout, exactly what the one-payout calls answer
made one after another, and leave every balance exactly where those calls leave it.

The batches are drawn: same- and cross-currency payouts, with and without a fee, batch items
(netted), payouts already committed, voided or settled, holds that expired, payouts the ledger
never saw, payouts refused before any request (a currency not enabled), payouts whose fee
changed since an earlier attempt, and a payout twice in one batch. Each step costs one
`create_transfers` request for the whole batch and at most one `lookup_transfers`, never one
per payout (and a batch too large for one request goes in as few as fit). A batch retried
after it applied, or a batch after the one-payout calls or the other way round, moves nothing.
Runs on the embedded engine, the ledger server and, with TB_ADDRESSES, a real cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import msgspec
import pytest
import tigerbeetle as tb
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.accounts import AccountType, platform_account_id, tenant_account_id
from ledger.chains import transfers_per_request_max
from ledger.clients import (
    EmbeddedClient,
    LedgerClient,
    RemoteLedgerClient,
    TigerBeetleClient,
    TigerBeetleSettings,
)
from ledger.errors import LedgerError
from ledger.invariants import InvariantViolation
from ledger.netting import NettedPair, Netting, clearing_sub_account
from ledger.payouts import Payout, Payouts, payouts_per_call_max
from ledger.remote.protocol import parse_address
from ledger.remote.server import LedgerServer
from ledger.service import Posted, platform_account_types, tenant_account_types
from ledger.transfers import Leg, linked, new_object_id, transfer_id
from tests.conftest import real_cluster_available, real_cluster_skip_reason
from tests.ledger.fixtures import CountingClient, World, make_world

Step = Literal["commit", "abort", "settle", "commit_and_settle"]
# Where a payout stands before the step. "expired": reserved with a hold timeout that then
# passed; "unknown": never reserved.
Prior = Literal["unknown", "reserved", "expired", "committed", "aborted", "settled"]
Outcome = Posted | LedgerError
Balances = tuple[int, int, int, int]  # debits pending/posted, credits pending/posted

steps: tuple[Step, ...] = ("commit", "abort", "settle", "commit_and_settle")
priors: tuple[Prior, ...] = ("unknown", "reserved", "expired", "committed", "aborted", "settled")
currencies = ("EUR", "GBP", "IDR")
# A real ISO currency the test worlds do not enable: such a payout is refused before any
# request, by the one-payout call and the batch alike.
disabled_currency = "SEK"
hold_timeout_seconds = 1
release_wait_seconds_max = 10
cases_per_batch_max = 8

backends = [
    "embedded",
    "remote",
    pytest.param(
        "tigerbeetle",
        marks=pytest.mark.skipif(not real_cluster_available(), reason=real_cluster_skip_reason),
    ),
]


@dataclass(frozen=True, kw_only=True)
class Case:
    """One drawn payout: its amounts, its shape and where it stands before the step."""

    source_currency: str
    target_currency: str
    source_amount_minor: int
    fee_minor: int
    target_amount_minor: int
    netted: bool = False
    prior: Prior = "unknown"
    # The step's payout has another fee than the one prepared: an id reused for another shape.
    altered: bool = False

    def refused_before_any_request(self) -> bool:
        return self.target_currency == disabled_currency


@st.composite
def drawn_cases(draw: st.DrawFn) -> Case:
    source = draw(st.sampled_from(("EUR", "GBP")))
    target = draw(st.sampled_from((*currencies, *currencies, disabled_currency)))
    source_amount = draw(st.integers(min_value=1, max_value=5_000))
    case = Case(
        source_currency=source,
        target_currency=target,
        source_amount_minor=source_amount,
        fee_minor=draw(st.one_of(st.just(0), st.integers(min_value=1, max_value=500))),
        target_amount_minor=source_amount
        if source == target
        else draw(st.integers(min_value=1, max_value=10**7)),
    )
    if case.refused_before_any_request():
        return case  # Never reserved: nothing can be.
    netted = draw(st.booleans())
    # Batch items are held until resolved: they never expire.
    prior = draw(st.sampled_from([p for p in priors if not (netted and p == "expired")]))
    altered = prior != "unknown" and draw(st.sampled_from((False, False, False, True)))
    return dataclasses.replace(case, netted=netted, prior=prior, altered=altered)


@dataclass(frozen=True)
class Scenario:
    step: Step
    cases: list[Case]
    # The batch, as indices into `cases`: each once, in any order, and maybe some again.
    order: list[int]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    cases = draw(st.lists(drawn_cases(), min_size=1, max_size=cases_per_batch_max))
    order = list(draw(st.permutations(range(len(cases)))))
    again = draw(st.lists(st.integers(min_value=0, max_value=len(cases) - 1), max_size=2))
    return Scenario(draw(st.sampled_from(steps)), cases, order + again)


class ShiftedClock:
    """Wall-clock time plus however far the test moved it: holds expire without a wait."""

    def __init__(self) -> None:
        self.shift_ns = 0

    def __call__(self) -> int:
        return time.time_ns() + self.shift_ns


@dataclass
class Backend:
    client: LedgerClient
    clock: ShiftedClock | None  # None: a real cluster, on which only waiting lets time pass.

    def let_holds_expire(self) -> None:
        if self.clock is not None:
            self.clock.shift_ns += (hold_timeout_seconds + 1) * 1_000_000_000


@contextlib.asynccontextmanager
async def opened(name: str) -> AsyncIterator[Backend]:
    async with contextlib.AsyncExitStack() as stack:
        clock = ShiftedClock()
        if name == "tigerbeetle":
            client: LedgerClient = TigerBeetleClient(TigerBeetleSettings.from_environment())
            stack.push_async_callback(client.close)
            yield Backend(client, None)
            return
        engine = EmbeddedClient(clock_ns=clock)
        stack.push_async_callback(engine.close)
        client = engine
        if name == "remote":
            server = await LedgerServer.start(engine, parse_address("127.0.0.1:0"))
            stack.push_async_callback(server.close)
            client = RemoteLedgerClient(server.address)
            stack.push_async_callback(client.close)
        yield Backend(client, clock)


# ----------------------------------------------------------------------------------------
# Two worlds prepared alike: one driven payout by payout, the other in batches.


@dataclass
class Run:
    world: World
    counting: CountingClient
    payouts: list[Payout]  # The step's payout of each case.


async def _prepared(client: LedgerClient, cases: list[Case]) -> Run:
    counting = CountingClient(client)
    world = await make_world(counting, {"EUR": 10**9, "GBP": 10**9})
    for currency in currencies:
        await world.ledger.fund_liquidity(
            funding_id=new_object_id(), currency_code=currency, amount_minor=10**12
        )
    return Run(world, counting, [await _prepare(world, case) for case in cases])


async def _prepare(world: World, case: Case) -> Payout:
    payout = Payout(
        payout_id=new_object_id(),
        tenant_id=world.tenant_id,
        source_currency=case.source_currency,
        source_amount_minor=case.source_amount_minor,
        fee_minor=case.fee_minor,
        target_currency=case.target_currency,
        target_amount_minor=case.target_amount_minor,
        netted=case.netted,
    )
    if case.prior != "unknown":
        await _reserve(world, payout, expiring=case.prior == "expired")
    if case.prior in ("committed", "settled"):
        await world.payouts.commit(payout)
    if case.prior == "settled":
        await world.payouts.settle(payout)
    if case.prior == "aborted":
        await world.payouts.abort(payout)
    if case.altered:
        return msgspec.structs.replace(payout, fee_minor=0 if payout.fee_minor else 1)
    return payout


async def _reserve(world: World, payout: Payout, *, expiring: bool) -> None:
    if payout.netted:
        # The item's batch converts first, for this item alone.
        netting = Netting(world.ledger)
        await netting.open_clearing_accounts(payout.tenant_id, {payout.source_currency})
        pair = NettedPair(
            batch_id=new_object_id(),
            tenant_id=payout.tenant_id,
            source_currency=payout.source_currency,
            target_currency=payout.target_currency,
            source_amount_minor=payout.source_amount_minor,
            fee_minor=payout.fee_minor,
            target_amount_minor=payout.target_amount_minor,
        )
        assert await netting.submit_chains([linked(netting.pair_chain(pair))]) == [None]
    await world.payouts.reserve(payout, timeout_seconds=hold_timeout_seconds if expiring else 0)


async def _wait_for_expired_holds(run: Run, cases: list[Case]) -> None:
    """Until the wallets hold exactly the reservations that did not expire (a real cluster
    releases an expired hold on its next pulse)."""
    expected = dict.fromkeys(("EUR", "GBP"), 0)
    for case in cases:
        if case.prior == "reserved" and not case.netted:
            expected[case.source_currency] += case.source_amount_minor + case.fee_minor
    deadline = time.monotonic() + release_wait_seconds_max
    while await _wallets_pending(run.world) != expected:
        assert time.monotonic() < deadline, "the expired holds were never released"
        await asyncio.sleep(0.05)


async def _wallets_pending(world: World) -> dict[str, int]:
    ids = {
        code: world.ledger.wallet_id(world.tenant_id, world.ledger.currencies.get(code))
        for code in ("EUR", "GBP")
    }
    found = {a.id: a for a in await world.ledger.client.lookup_accounts(list(ids.values()))}
    return {code: found[account_id].debits_pending for code, account_id in ids.items()}


# ----------------------------------------------------------------------------------------
# The step, payout by payout or as one batch, and what it moved.


async def _one_payout(payouts: Payouts, step: Step, payout: Payout) -> Outcome:
    """The one-payout calls, as the worker makes them: a payout whose commit failed is
    never settled."""
    single: dict[Step, Callable[[Payout], Awaitable[Posted]]] = {
        "commit": payouts.commit,
        "abort": payouts.abort,
        "settle": payouts.settle,
    }
    try:
        if step == "commit_and_settle":
            await payouts.commit(payout)
            return await payouts.settle(payout)
        return await single[step](payout)
    except LedgerError as error:
        return error


async def _one_by_one(payouts: Payouts, step: Step, batch: list[Payout]) -> list[Outcome]:
    return [await _one_payout(payouts, step, payout) for payout in batch]


async def _batched(payouts: Payouts, step: Step, batch: list[Payout]) -> list[Outcome]:
    many: dict[Step, Callable[[Sequence[Payout]], Awaitable[list[Outcome]]]] = {
        "commit": payouts.commit_many,
        "abort": payouts.abort_many,
        "settle": payouts.settle_many,
        "commit_and_settle": payouts.commit_and_settle_many,
    }
    return await many[step](batch)


Driver = Callable[[Payouts, Step, list[Payout]], Awaitable[list[Outcome]]]


@dataclass(frozen=True)
class Done:
    """A step's answers, its requests, and every balance it moved."""

    outcomes: list[Outcome]
    creates: int
    lookups: int
    tenant: dict[tuple[str, str, int], Balances]
    platform_moved: dict[tuple[str, str], Balances]


async def _drive(run: Run, drive: Driver, step: Step, order: list[int]) -> Done:
    platform_before = await _platform_balances(run.world)
    run.counting.reset()
    outcomes = await drive(run.world.payouts, step, [run.payouts[i] for i in order])
    creates = len(run.counting.create_transfers_sizes)
    lookups = len(run.counting.lookup_transfers_sizes)
    platform_after = await _platform_balances(run.world)
    moved = {key: _minus(platform_after[key], platform_before[key]) for key in platform_after}
    return Done(outcomes, creates, lookups, await _tenant_balances(run.world), moved)


def _balances(account: tb.Account) -> Balances:
    return (
        account.debits_pending,
        account.debits_posted,
        account.credits_pending,
        account.credits_posted,
    )


def _minus(after: Balances, before: Balances) -> Balances:
    return (
        after[0] - before[0],
        after[1] - before[1],
        after[2] - before[2],
        after[3] - before[3],
    )


async def _tenant_balances(world: World) -> dict[tuple[str, str, int], Balances]:
    """The tenant's every account (clearing accounts once opened), by type, currency and
    sub-account: comparable between the two worlds' tenants."""
    ids: dict[tuple[str, str, int], int] = {}
    for code in currencies:
        number = world.ledger.currencies.get(code).number
        for account_type in tenant_account_types:
            key = (account_type.name, code, 0)
            ids[key] = tenant_account_id(world.tenant_id, account_type, number)
        ids[("CLEARING", code, clearing_sub_account)] = tenant_account_id(
            world.tenant_id,
            AccountType.PENDING_OUTBOUND,
            number,
            sub_account=clearing_sub_account,
        )
    found = {a.id: a for a in await world.ledger.client.lookup_accounts(list(ids.values()))}
    return {key: _balances(found[i]) for key, i in ids.items() if i in found}


async def _platform_balances(world: World) -> dict[tuple[str, str], Balances]:
    """The platform's accounts, shared by both worlds: compared by what one step moved."""
    ids = {
        (account_type.name, code): platform_account_id(
            account_type, world.ledger.currencies.get(code).number
        )
        for code in currencies
        for account_type in platform_account_types
    }
    found = {a.id: a for a in await world.ledger.client.lookup_accounts(list(ids.values()))}
    return {key: _balances(found[i]) for key, i in ids.items()}


def _answer(outcome: Outcome, payout: Payout) -> tuple[object, ...]:
    """An outcome as comparable between worlds: the leg of the payout whose transfer it
    names (its id derives from the payout's, which differs between worlds), or the error."""
    if isinstance(outcome, LedgerError):
        return ("refused", type(outcome).__name__)
    legs = {transfer_id(object_id=payout.payout_id, leg=leg): leg for leg in Leg}
    return ("posted", legs[outcome.transfer_id], outcome.existed)


async def _states(run: Run) -> list[str]:
    states = []
    for payout in run.payouts:
        try:
            states.append((await run.world.payouts.state(payout)).value)
        except LedgerError as error:
            states.append(type(error).__name__)
    return states


async def _check_timestamps_are_the_stored_ones(run: Run, outcomes: list[Outcome]) -> None:
    posted = [outcome for outcome in outcomes if isinstance(outcome, Posted)]
    stored = {
        t.id: t
        for t in await run.world.ledger.client.lookup_transfers([p.transfer_id for p in posted])
    }
    for outcome in posted:
        assert stored[outcome.transfer_id].timestamp == outcome.timestamp_ns


def _answers(run: Run, done: Done, order: list[int]) -> list[tuple[object, ...]]:
    return [
        _answer(outcome, run.payouts[index])
        for outcome, index in zip(done.outcomes, order, strict=True)
    ]


def _requests_expected(scenario: Scenario, outcomes: list[Outcome]) -> int:
    """One request per step that has a chain to send: commit_and_settle's second step sends
    the settlements of the payouts whose commit applied, which (no settlement fails in these
    worlds) are those it answers with a `Posted`."""
    planned = any(not scenario.cases[i].refused_before_any_request() for i in scenario.order)
    settles = scenario.step == "commit_and_settle" and any(
        isinstance(outcome, Posted) for outcome in outcomes
    )
    return int(planned) + int(settles)


@pytest.mark.parametrize("backend", backends)
@settings(max_examples=60, deadline=None)
@given(scenario=scenarios())
def test_a_batch_answers_and_moves_what_one_call_per_payout_does(
    backend: str, scenario: Scenario
) -> None:
    asyncio.run(_compare(backend, scenario))


async def _compare(backend_name: str, scenario: Scenario) -> None:
    async with opened(backend_name) as backend:
        one_by_one = await _prepared(backend.client, scenario.cases)
        batched = await _prepared(backend.client, scenario.cases)
        backend.let_holds_expire()
        for run in (one_by_one, batched):
            await _wait_for_expired_holds(run, scenario.cases)
        alone = await _drive(one_by_one, _one_by_one, scenario.step, scenario.order)
        together = await _drive(batched, _batched, scenario.step, scenario.order)

        assert _answers(batched, together, scenario.order) == _answers(
            one_by_one, alone, scenario.order
        )
        # Money: every balance of the tenant, and every movement of the platform's accounts.
        assert together.tenant == alone.tenant
        assert together.platform_moved == alone.platform_moved
        assert await _states(batched) == await _states(one_by_one)
        await _check_timestamps_are_the_stored_ones(batched, together.outcomes)
        await _check_timestamps_are_the_stored_ones(one_by_one, alone.outcomes)
        expected_requests = _requests_expected(scenario, together.outcomes)
        assert together.creates == expected_requests
        assert together.lookups <= expected_requests

        # Retried as a batch, or one by one after a batch, or as a batch after the calls
        # one by one: the same answers, and nothing moves.
        await _check_retry(batched, together, _batched, scenario)
        await _check_retry(batched, together, _one_by_one, scenario)
        await _check_retry(one_by_one, alone, _batched, scenario)


async def _check_retry(run: Run, first: Done, drive: Driver, scenario: Scenario) -> None:
    again = await _drive(run, drive, scenario.step, scenario.order)
    assert again.tenant == first.tenant
    assert set(again.platform_moved.values()) == {(0, 0, 0, 0)}
    for before, after in zip(first.outcomes, again.outcomes, strict=True):
        if isinstance(before, Posted):
            assert isinstance(after, Posted)
            assert (after.transfer_id, after.timestamp_ns, after.existed) == (
                before.transfer_id,
                before.timestamp_ns,
                True,
            )
        else:
            # Refused again, though maybe in other words (TigerBeetle remembers an id that
            # failed for lack of something, and answers `id_already_failed` from then on).
            assert isinstance(after, LedgerError)
    if drive is _batched:
        expected_requests = _requests_expected(scenario, again.outcomes)
        assert again.creates == expected_requests
        assert again.lookups <= expected_requests


# ----------------------------------------------------------------------------------------
# Examples.


def _eur_payout(world: World, **fields: object) -> Payout:
    values: dict[str, object] = {
        "payout_id": new_object_id(),
        "tenant_id": world.tenant_id,
        "source_currency": "EUR",
        "source_amount_minor": 1_000,
        "fee_minor": 20,
        "target_currency": "IDR",
        "target_amount_minor": 1_700_000,
    }
    values.update(fields)
    return Payout(**values)  # type: ignore[arg-type]


async def test_each_payout_of_a_batch_meets_its_own_outcome(ledger_client: LedgerClient) -> None:
    counting = CountingClient(ledger_client)
    world = await make_world(counting, {"EUR": 100_000})
    await world.ledger.fund_liquidity(
        funding_id=new_object_id(), currency_code="IDR", amount_minor=10**9
    )
    reserved, committed, unknown = (_eur_payout(world) for _ in range(3))
    not_enabled = _eur_payout(world, target_currency=disabled_currency)
    for payout in (reserved, committed):
        await world.payouts.reserve(payout)
    await world.payouts.commit(committed)
    counting.reset()
    outcomes = await world.payouts.commit_many([reserved, unknown, not_enabled, committed])
    assert [type(outcome).__name__ for outcome in outcomes] == [
        "Posted",
        "HoldNotFound",
        "CurrencyNotEnabled",
        "Posted",
    ]
    assert [o.existed for o in outcomes if isinstance(o, Posted)] == [False, True]
    # One request for the three chains of three legs; one lookup for the one applied before.
    assert counting.create_transfers_sizes == [3 * 3]
    assert len(counting.lookup_transfers_sizes) == 1
    balance = await world.balance("EUR")
    assert (balance.posted, balance.pending) == (100_000 - 2 * 1_020, 0)


async def test_a_batch_larger_than_one_request_goes_in_as_few_as_fit(
    ledger_client: LedgerClient,
) -> None:
    counting = CountingClient(ledger_client)
    # The deposit pays into the regional settlement account what the settlements pay out.
    world = await make_world(counting, {"EUR": 10**9})
    payouts = [
        _eur_payout(world, target_currency="EUR", target_amount_minor=1_000, fee_minor=0)
        for _ in range(transfers_per_request_max + 1)
    ]
    settlement = platform_account_id(AccountType.REGIONAL_SETTLEMENT, 978)
    (before,) = await ledger_client.lookup_accounts([settlement])
    counting.reset()
    first = await world.payouts.settle_many(payouts)
    assert counting.create_transfers_sizes == [transfers_per_request_max, 1]
    assert counting.lookup_transfers_sizes == []
    assert all(isinstance(outcome, Posted) and not outcome.existed for outcome in first)
    (after,) = await ledger_client.lookup_accounts([settlement])
    assert after.credits_posted - before.credits_posted == 1_000 * len(payouts)

    counting.reset()
    again = await world.payouts.settle_many(payouts)
    assert counting.create_transfers_sizes == [transfers_per_request_max, 1]
    assert counting.lookup_transfers_sizes == [transfers_per_request_max, 1]
    assert [(o.transfer_id, o.timestamp_ns, o.existed) for o in again if isinstance(o, Posted)] == [
        (o.transfer_id, o.timestamp_ns, True) for o in first if isinstance(o, Posted)
    ]
    (unmoved,) = await ledger_client.lookup_accounts([settlement])
    assert unmoved.credits_posted == after.credits_posted


async def test_more_payouts_than_one_call_takes_is_a_programmer_error() -> None:
    client = EmbeddedClient()
    counting = CountingClient(client)
    try:
        world = await make_world(counting, {"EUR": 1_000})
        counting.reset()
        with pytest.raises(InvariantViolation):
            await world.payouts.settle_many([_eur_payout(world)] * (payouts_per_call_max + 1))
        assert counting.create_transfers_sizes == []
    finally:
        await client.close()
