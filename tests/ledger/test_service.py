"""Deposits, liquidity and holds through `ledger.service.Ledger`: balances move exactly as
the API promises, retries never move money twice (a second capture of another amount is
refused as already captured), and one tenant can never touch another's hold. Runs on the
embedded engine and, with TB_ADDRESSES, on a real cluster."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.clients import LedgerClient
from ledger.errors import (
    AccountNotOpen,
    AttemptAlreadyFailed,
    CaptureExceedsHold,
    CurrencyNotEnabled,
    HoldAlreadyCaptured,
    HoldAlreadyVoided,
    HoldNotFound,
    InsufficientFunds,
    InvalidAmount,
    UnknownCurrency,
)
from ledger.transfers import new_object_id
from tests.conftest import fresh_tenant_id
from tests.ledger.fixtures import make_world


async def test_deposits_credit_the_wallet_once(ledger_client: LedgerClient) -> None:
    world = await make_world(ledger_client, {"EUR": 10_000})
    deposit_id = new_object_id()
    first = await world.ledger.deposit(
        tenant_id=world.tenant_id, deposit_id=deposit_id, currency_code="EUR", amount_minor=500
    )
    again = await world.ledger.deposit(
        tenant_id=world.tenant_id, deposit_id=deposit_id, currency_code="EUR", amount_minor=500
    )
    assert again == first
    balance = await world.balance("EUR")
    assert (balance.posted, balance.pending, balance.available) == (10_500, 0, 10_500)


async def test_holds_capture_partially_and_release_the_rest(ledger_client: LedgerClient) -> None:
    world = await make_world(ledger_client, {"EUR": 10_000})
    hold_id = new_object_id()
    args: dict[str, Any] = {
        "tenant_id": world.tenant_id,
        "hold_id": hold_id,
        "currency_code": "EUR",
    }
    await world.ledger.hold(**args, amount_minor=4_000)
    held = await world.balance("EUR")
    assert (held.posted, held.pending, held.available) == (10_000, 4_000, 6_000)
    with pytest.raises(CaptureExceedsHold):
        await world.ledger.capture_hold(**args, amount_minor=4_001)
    await world.ledger.capture_hold(**args, amount_minor=2_500)
    await world.ledger.capture_hold(**args, amount_minor=2_500)  # A retry: nothing more moves.
    # Another amount is another capture, of a hold that is no longer pending.
    for other in (1_000, None):
        with pytest.raises(HoldAlreadyCaptured):
            await world.ledger.capture_hold(**args, amount_minor=other)
    captured = await world.balance("EUR")
    assert (captured.posted, captured.pending, captured.available) == (7_500, 0, 7_500)
    with pytest.raises(HoldAlreadyCaptured):
        await world.ledger.void_hold(**args)


async def test_voiding_restores_the_wallet(ledger_client: LedgerClient) -> None:
    world = await make_world(ledger_client, {"EUR": 1_000})
    args: dict[str, Any] = {
        "tenant_id": world.tenant_id,
        "hold_id": new_object_id(),
        "currency_code": "EUR",
    }
    await world.ledger.hold(**args, amount_minor=1_000)
    with pytest.raises(InsufficientFunds):
        await world.ledger.hold(
            tenant_id=world.tenant_id, hold_id=new_object_id(), currency_code="EUR", amount_minor=1
        )
    await world.ledger.void_hold(**args)
    await world.ledger.void_hold(**args)
    with pytest.raises(HoldAlreadyVoided):
        await world.ledger.capture_hold(**args)
    balance = await world.balance("EUR")
    assert (balance.posted, balance.pending, balance.available) == (1_000, 0, 1_000)


async def test_a_tenant_cannot_capture_or_void_another_tenants_hold(
    ledger_client: LedgerClient,
) -> None:
    world = await make_world(ledger_client, {"EUR": 1_000})
    intruder = await world.new_tenant({"EUR": 1_000})
    hold_id = new_object_id()
    await world.ledger.hold(
        tenant_id=world.tenant_id, hold_id=hold_id, currency_code="EUR", amount_minor=700
    )
    with pytest.raises(HoldNotFound):
        await world.ledger.capture_hold(tenant_id=intruder, hold_id=hold_id, currency_code="EUR")
    with pytest.raises(HoldNotFound):
        await world.ledger.void_hold(tenant_id=intruder, hold_id=hold_id, currency_code="EUR")
    assert (await world.balance("EUR")).pending == 700
    assert (await world.balance("EUR", intruder)).posted == 1_000
    with pytest.raises(HoldNotFound):
        await world.ledger.capture_hold(
            tenant_id=world.tenant_id, hold_id=new_object_id(), currency_code="EUR"
        )


async def test_a_failed_hold_cannot_be_retried_into_success(ledger_client: LedgerClient) -> None:
    world = await make_world(ledger_client, {"EUR": 100})
    args: dict[str, Any] = {
        "tenant_id": world.tenant_id,
        "hold_id": new_object_id(),
        "currency_code": "EUR",
    }
    with pytest.raises(InsufficientFunds):
        await world.ledger.hold(**args, amount_minor=200)
    await world.ledger.deposit(
        tenant_id=world.tenant_id, deposit_id=new_object_id(), currency_code="EUR", amount_minor=500
    )
    with pytest.raises(AttemptAlreadyFailed):
        await world.ledger.hold(**args, amount_minor=200)


async def test_bad_input_is_refused_before_the_ledger(ledger_client: LedgerClient) -> None:
    world = await make_world(ledger_client, {"EUR": 100})
    base = {"tenant_id": world.tenant_id, "deposit_id": new_object_id()}
    for amount in (0, -5, 10**19):
        with pytest.raises(InvalidAmount):
            await world.ledger.deposit(**base, currency_code="EUR", amount_minor=amount)
    with pytest.raises(UnknownCurrency):
        await world.ledger.deposit(**base, currency_code="EUX", amount_minor=1)
    with pytest.raises(CurrencyNotEnabled):
        await world.ledger.deposit(**base, currency_code="SEK", amount_minor=1)
    with pytest.raises(InvalidAmount):
        await world.ledger.hold(
            tenant_id=world.tenant_id,
            hold_id=new_object_id(),
            currency_code="EUR",
            amount_minor=1,
            timeout_seconds=-1,
        )
    assert (await world.balance("EUR")).posted == 100


async def test_a_tenant_without_accounts_gets_a_typed_error(ledger_client: LedgerClient) -> None:
    world = await make_world(ledger_client, {})
    with pytest.raises(AccountNotOpen):
        await world.ledger.deposit(
            tenant_id=fresh_tenant_id(),
            deposit_id=new_object_id(),
            currency_code="EUR",
            amount_minor=1,
        )


async def test_opening_accounts_is_idempotent(ledger_client: LedgerClient) -> None:
    world = await make_world(ledger_client, {"EUR": 5})
    await world.ledger.open_platform_accounts()
    await world.ledger.open_tenant_accounts(world.tenant_id)
    assert (await world.balance("EUR")).posted == 5
