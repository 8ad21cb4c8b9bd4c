"""Property tests of the ledger's invariants over random sequences of money operations.

A hypothesis state machine drives deposits, liquidity funding, holds (captured, voided or
left to expire) and payouts (reserved, committed, aborted, settled, refunded) against the
embedded engine, next to a simple model of every wallet and FX position. After every step:

- debits equal credits in every ledger, pending and posted alike;
- no wallet and no FX position goes below zero, and each matches the model exactly;
- failures happen exactly when the model says the money is not there.

Any request may be replayed at any time, and replaying never changes a single balance.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
)

from ledger.accounts import AccountType, decode_account_id
from ledger.clients import EmbeddedClient
from ledger.currencies import CurrencyRegistry
from ledger.errors import (
    CaptureExceedsHold,
    HoldAlreadyCaptured,
    HoldAlreadyVoided,
    HoldExpired,
    InsufficientFunds,
    InsufficientLiquidity,
    LedgerError,
)
from ledger.payouts import Payout, Payouts
from ledger.service import Ledger
from ledger.transfers import new_object_id

currencies = ("EUR", "IDR", "GBP")
tenants = (1, 2)
clock_tick_ns = 10 * 1_000_000_000
# Hold timeouts fall half-way between clock ticks, so "expired" is never ambiguous.
hold_timeouts_seconds = (0, 5, 15, 25)


@dataclass
class HoldModel:
    tenant_id: int
    currency: str
    amount: int
    expires_at_ns: int | None
    state: str = "pending"  # pending, captured, voided (expiry is derived from the clock)
    # The amount the capture asked for (None: the whole hold), once captured.
    captured_request: int | None = None


@dataclass
class PayoutModel:
    payout: Payout
    state: str = "reserved"  # reserved, committed, aborted, settled, refunded


@dataclass
class Model:
    posted: collections.Counter[tuple[int, str]] = field(default_factory=collections.Counter)
    liquidity: collections.Counter[str] = field(default_factory=collections.Counter)
    holds: dict[int, HoldModel] = field(default_factory=dict)
    payouts: dict[int, PayoutModel] = field(default_factory=dict)

    def pending(self, tenant_id: int, currency: str, now_ns: int) -> int:
        held = sum(
            h.amount
            for h in self.holds.values()
            if (h.tenant_id, h.currency) == (tenant_id, currency)
            and h.state == "pending"
            and not _expired(h, now_ns)
        )
        reserved = sum(
            p.payout.source_amount_minor + p.payout.fee_minor
            for p in self.payouts.values()
            if (p.payout.tenant_id, p.payout.source_currency) == (tenant_id, currency)
            and p.state == "reserved"
        )
        return held + reserved

    def liquidity_available(self, currency: str) -> int:
        reserved = sum(
            p.payout.target_amount_minor
            for p in self.payouts.values()
            if p.payout.target_currency == currency
            and p.state == "reserved"
            and p.payout.source_currency != currency
        )
        return self.liquidity[currency] - reserved


def _expired(hold: HoldModel, now_ns: int) -> bool:
    return hold.expires_at_ns is not None and now_ns > hold.expires_at_ns


amounts = st.integers(min_value=1, max_value=5_000)


class LedgerMachine(RuleBasedStateMachine):
    holds = Bundle("holds")
    payouts = Bundle("payouts")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.now_ns = 1_800_000_000 * 1_000_000_000
        self.client = EmbeddedClient(clock_ns=lambda: self.now_ns)
        self.ledger = Ledger(self.client, CurrencyRegistry(currencies))
        self.payout_ops = Payouts(self.ledger)
        self.model = Model()
        self.requests: list[Callable[[], Awaitable[object]]] = []
        self.run(self.ledger.open_platform_accounts())
        for tenant in tenants:
            self.run(self.ledger.open_tenant_accounts(tenant))

    def run(self, awaitable: Awaitable[object]) -> object:
        async def wrapped() -> object:
            return await awaitable

        return self.loop.run_until_complete(wrapped())

    def attempt(self, make: Callable[[], Awaitable[object]]) -> type[LedgerError] | None:
        """Run a request, remember it for replays, and return the error type it raised."""
        self.requests.append(make)
        try:
            self.run(make())
        except LedgerError as error:
            return type(error)
        return None

    def available(self, tenant_id: int, currency: str) -> int:
        key = (tenant_id, currency)
        return self.model.posted[key] - self.model.pending(tenant_id, currency, self.now_ns)

    def teardown(self) -> None:
        self.run(self.client.close())
        self.loop.close()

    # ----------------------------------------------------------------------------------
    # Money in.

    @rule(tenant=st.sampled_from(tenants), currency=st.sampled_from(currencies), amount=amounts)
    def deposit(self, tenant: int, currency: str, amount: int) -> None:
        deposit_id = new_object_id()
        error = self.attempt(
            lambda: self.ledger.deposit(
                tenant_id=tenant, deposit_id=deposit_id, currency_code=currency, amount_minor=amount
            )
        )
        assert error is None
        self.model.posted[(tenant, currency)] += amount

    @rule(currency=st.sampled_from(currencies), amount=amounts)
    def fund(self, currency: str, amount: int) -> None:
        funding_id = new_object_id()
        error = self.attempt(
            lambda: self.ledger.fund_liquidity(
                funding_id=funding_id, currency_code=currency, amount_minor=amount
            )
        )
        assert error is None
        self.model.liquidity[currency] += amount

    # ----------------------------------------------------------------------------------
    # Holds.

    @rule(
        target=holds,
        tenant=st.sampled_from(tenants),
        currency=st.sampled_from(currencies),
        amount=amounts,
        timeout=st.sampled_from(hold_timeouts_seconds),
    )
    def hold(self, tenant: int, currency: str, amount: int, timeout: int) -> int:
        hold_id = new_object_id()
        expected_ok = self.available(tenant, currency) >= amount
        error = self.attempt(
            lambda: self.ledger.hold(
                tenant_id=tenant,
                hold_id=hold_id,
                currency_code=currency,
                amount_minor=amount,
                timeout_seconds=timeout,
            )
        )
        assert error is (None if expected_ok else InsufficientFunds)
        if expected_ok:
            expires = self.now_ns + timeout * 1_000_000_000 if timeout else None
            self.model.holds[hold_id] = HoldModel(tenant, currency, amount, expires)
        return hold_id

    @rule(hold_id=holds, partial=st.one_of(st.none(), amounts))
    def capture(self, hold_id: int, partial: int | None) -> None:
        hold = self.model.holds.get(hold_id)
        if hold is None:
            return  # The hold was refused; nothing to capture.
        error = self.attempt(
            lambda: self.ledger.capture_hold(
                tenant_id=hold.tenant_id,
                hold_id=hold_id,
                currency_code=hold.currency,
                amount_minor=partial,
            )
        )
        amount = hold.amount if partial is None else partial
        # TigerBeetle's order: the capture's own id, then the amount, then the hold's state.
        if hold.state == "captured":
            # The same capture again replays; another amount finds the hold captured.
            assert error is (None if partial == hold.captured_request else HoldAlreadyCaptured)
        elif amount > hold.amount:
            assert error is CaptureExceedsHold
        elif hold.state == "voided":
            assert error is HoldAlreadyVoided
        elif _expired(hold, self.now_ns):
            assert error is HoldExpired
        else:
            assert error is None
            hold.state = "captured"
            hold.captured_request = partial
            self.model.posted[(hold.tenant_id, hold.currency)] -= amount

    @rule(hold_id=holds)
    def void(self, hold_id: int) -> None:
        hold = self.model.holds.get(hold_id)
        if hold is None:
            return
        error = self.attempt(
            lambda: self.ledger.void_hold(
                tenant_id=hold.tenant_id, hold_id=hold_id, currency_code=hold.currency
            )
        )
        if hold.state == "captured":
            assert error is HoldAlreadyCaptured
        elif hold.state == "voided":
            assert error is None
        elif _expired(hold, self.now_ns):
            assert error is HoldExpired
        else:
            assert error is None
            hold.state = "voided"

    @rule(ticks=st.integers(min_value=1, max_value=3))
    def advance_clock(self, ticks: int) -> None:
        self.now_ns += ticks * clock_tick_ns

    # ----------------------------------------------------------------------------------
    # Payouts.

    @rule(
        target=payouts,
        tenant=st.sampled_from(tenants),
        source=st.sampled_from(currencies),
        target_currency=st.sampled_from(currencies),
        amount=amounts,
        fee=st.integers(min_value=0, max_value=200),
        rate=st.integers(min_value=1, max_value=3),
    )
    def reserve(
        self, tenant: int, source: str, target_currency: str, amount: int, fee: int, rate: int
    ) -> int:
        target_amount = amount if source == target_currency else amount * rate
        payout = Payout(
            payout_id=new_object_id(),
            tenant_id=tenant,
            source_currency=source,
            source_amount_minor=amount,
            fee_minor=fee,
            target_currency=target_currency,
            target_amount_minor=target_amount,
        )
        if self.available(tenant, source) < amount + fee:
            expected: type[LedgerError] | None = InsufficientFunds
        elif source != target_currency and (
            self.model.liquidity_available(target_currency) < target_amount
        ):
            expected = InsufficientLiquidity
        else:
            expected = None
        error = self.attempt(lambda: self.payout_ops.reserve(payout))
        assert error is expected
        if expected is None:
            self.model.payouts[payout.payout_id] = PayoutModel(payout)
        return payout.payout_id

    @rule(payout_id=consumes(payouts), commit=st.booleans())
    def resolve(self, payout_id: int, commit: bool) -> None:
        entry = self.model.payouts.get(payout_id)
        if entry is None or entry.state != "reserved":
            return
        payout = entry.payout
        error = self.attempt(
            lambda: (self.payout_ops.commit if commit else self.payout_ops.abort)(payout)
        )
        assert error is None
        if not commit:
            entry.state = "aborted"
            return
        entry.state = "committed"
        self.model.posted[(payout.tenant_id, payout.source_currency)] -= (
            payout.source_amount_minor + payout.fee_minor
        )
        if payout.source_currency != payout.target_currency:
            self.model.liquidity[payout.source_currency] += payout.source_amount_minor
            self.model.liquidity[payout.target_currency] -= payout.target_amount_minor

    @precondition(lambda self: any(p.state == "committed" for p in self.model.payouts.values()))
    @rule(data=st.data(), refund=st.booleans())
    def after_rail(self, data: st.DataObject, refund: bool) -> None:
        committed = sorted(k for k, p in self.model.payouts.items() if p.state == "committed")
        entry = self.model.payouts[data.draw(st.sampled_from(committed))]
        payout = entry.payout
        if not refund:
            assert self.attempt(lambda: self.payout_ops.settle(payout)) is None
            entry.state = "settled"
            return
        cross = payout.source_currency != payout.target_currency
        short = cross and (
            self.model.liquidity_available(payout.source_currency) < payout.source_amount_minor
        )
        error = self.attempt(lambda: self.payout_ops.refund(payout))
        assert error is (InsufficientLiquidity if short else None)
        if short:
            return
        entry.state = "refunded"
        self.model.posted[(payout.tenant_id, payout.source_currency)] += (
            payout.source_amount_minor + payout.fee_minor
        )
        if cross:
            self.model.liquidity[payout.source_currency] -= payout.source_amount_minor
            self.model.liquidity[payout.target_currency] += payout.target_amount_minor

    # ----------------------------------------------------------------------------------
    # Replays and invariants.

    @precondition(lambda self: bool(self.requests))
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        before = [_balances(a) for a in self.client.engine.accounts()]
        make = data.draw(st.sampled_from(self.requests))
        with contextlib.suppress(LedgerError):  # A replay may fail again, never move money.
            self.run(make())
        after = [_balances(a) for a in self.client.engine.accounts()]
        assert after == before

    @invariant()
    def debits_equal_credits_in_every_ledger(self) -> None:
        self.run(self.client.lookup_accounts([]))  # Lets due expirations run, as any request.
        totals: dict[int, list[int]] = collections.defaultdict(lambda: [0, 0, 0, 0])
        for account in self.client.engine.accounts():
            total = totals[account.ledger]
            total[0] += account.debits_pending
            total[1] += account.debits_posted
            total[2] += account.credits_pending
            total[3] += account.credits_posted
        for debits_pending, debits_posted, credits_pending, credits_posted in totals.values():
            assert debits_pending == credits_pending
            assert debits_posted == credits_posted

    @invariant()
    def balances_match_the_model_and_never_go_negative(self) -> None:
        self.run(self.client.lookup_accounts([]))
        for account in self.client.engine.accounts():
            address = decode_account_id(account.id)
            currency = self.ledger.currencies.by_number(address.currency_number).code
            available = account.credits_posted - account.debits_posted - account.debits_pending
            if address.account_type is AccountType.TENANT_WALLET:
                assert available >= 0
                key = (address.tenant_id, currency)
                assert account.credits_posted - account.debits_posted == self.model.posted[key]
                assert account.debits_pending == self.model.pending(*key, self.now_ns)
            elif address.account_type is AccountType.FX_POSITION:
                assert available >= 0
                assert available == self.model.liquidity_available(currency)
            elif address.account_type is AccountType.REGIONAL_SETTLEMENT:
                assert account.credits_posted + account.credits_pending <= account.debits_posted


def _balances(account: object) -> tuple[int, ...]:
    return tuple(
        getattr(account, name)
        for name in (
            "id",
            "debits_pending",
            "debits_posted",
            "credits_pending",
            "credits_posted",
            "flags",
        )
    )


LedgerMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestLedgerProperties = LedgerMachine.TestCase
