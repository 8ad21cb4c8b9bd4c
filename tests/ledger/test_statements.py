"""Balances and statements from the ledger: each entry carries the wallet's balance right
after it, and the cursor pages through history without gaps or repeats.
Runs on the embedded engine and, with TB_ADDRESSES, on a real cluster."""

from __future__ import annotations

import pytest

from ledger.clients import LedgerClient
from ledger.errors import CurrencyNotEnabled, InvalidAmount
from ledger.transfers import new_object_id
from tests.ledger.fixtures import make_world


async def test_statement_lists_history_with_running_balances(ledger_client: LedgerClient) -> None:
    world = await make_world(ledger_client, {"EUR": 1_000})
    hold_id = new_object_id()
    await world.ledger.hold(
        tenant_id=world.tenant_id, hold_id=hold_id, currency_code="EUR", amount_minor=300
    )
    await world.ledger.capture_hold(
        tenant_id=world.tenant_id, hold_id=hold_id, currency_code="EUR", amount_minor=200
    )
    statement = await world.statements.statement(tenant_id=world.tenant_id, currency_code="EUR")
    rows = [
        (e.kind, e.direction, e.amount, e.status, e.balance_posted, e.balance_pending)
        for e in statement.entries
    ]
    assert rows == [
        ("deposit", "credit", 1_000, "posted", 1_000, 0),
        ("hold", "debit", 300, "pending", 1_000, 300),
        ("hold", "debit", 200, "posting", 800, 0),
    ]
    assert statement.entries[1].object_id == hold_id
    assert statement.entries[0].counterparty == "regional_settlement"


async def test_statement_pages_after_the_last_entry_it_gave(ledger_client: LedgerClient) -> None:
    world = await make_world(ledger_client, {"EUR": 1})
    for amount in range(2, 7):
        await world.ledger.deposit(
            tenant_id=world.tenant_id,
            deposit_id=new_object_id(),
            currency_code="EUR",
            amount_minor=amount,
        )
    seen: list[int] = []
    cursor = 0
    while True:
        page = await world.statements.statement(
            tenant_id=world.tenant_id, currency_code="EUR", limit=2, after_ns=cursor
        )
        seen.extend(e.amount for e in page.entries)
        if len(page.entries) < 2:
            break
        cursor = page.entries[-1].timestamp_ns
    assert seen == [1, 2, 3, 4, 5, 6]


async def test_balances_list_every_open_wallet(ledger_client: LedgerClient) -> None:
    world = await make_world(ledger_client, {"EUR": 10, "IDR": 20_000})
    balances = await world.statements.balances(world.tenant_id)
    assert [(b.currency, b.available) for b in balances] == [
        ("EUR", 10),
        ("GBP", 0),
        ("IDR", 20_000),
        ("USD", 0),
    ]
    assert await world.statements.balances(world.tenant_id + 1) == []


async def test_statement_input_is_validated(ledger_client: LedgerClient) -> None:
    world = await make_world(ledger_client, {})
    with pytest.raises(InvalidAmount):
        await world.statements.statement(tenant_id=world.tenant_id, currency_code="EUR", limit=0)
    with pytest.raises(CurrencyNotEnabled):
        await world.statements.statement(tenant_id=world.tenant_id, currency_code="SEK")
