"""Conformance: 1,000 concurrent holds on one wallet never overdraw it, and a request of
TigerBeetle's batch maximum (8,189 transfers) succeeds whole, on both backends alike."""

from __future__ import annotations

import asyncio

import pytest
import tigerbeetle as tb

from ledger.clients import LedgerClient, batch_size_max
from ledger.currencies import CurrencyRegistry
from ledger.errors import InsufficientFunds
from ledger.service import Ledger
from ledger.statements import Statements
from ledger.transfers import new_object_id
from tests.conftest import fresh_tenant_id
from tests.ledger.conformance.helpers import AF, T, account, open_accounts, transfer

pytestmark = pytest.mark.conformance


async def test_a_thousand_concurrent_holds_never_overdraw(ledger_client: LedgerClient) -> None:
    ledger = Ledger(ledger_client, CurrencyRegistry(["EUR"]))
    tenant = fresh_tenant_id()
    await ledger.open_platform_accounts()
    await ledger.open_tenant_accounts(tenant)
    await ledger.deposit(
        tenant_id=tenant, deposit_id=new_object_id(), currency_code="EUR", amount_minor=60_000
    )

    async def hold() -> bool:
        try:
            await ledger.hold(
                tenant_id=tenant, hold_id=new_object_id(), currency_code="EUR", amount_minor=100
            )
        except InsufficientFunds:
            return False
        return True

    outcomes = await asyncio.gather(*(hold() for _ in range(1_000)))
    assert outcomes.count(True) == 600
    (balance,) = await Statements(ledger).balances(tenant)
    assert (balance.posted, balance.pending, balance.available) == (60_000, 60_000, 0)


async def test_a_batch_of_the_maximum_size_succeeds_whole(ledger_client: LedgerClient) -> None:
    debit, credit = await open_accounts(ledger_client, AF.NONE, AF.NONE)
    transfers = [transfer(debit, credit, 1) for _ in range(batch_size_max)]
    results = await ledger_client.create_transfers(transfers)
    assert len(results) == batch_size_max
    assert {r.status for r in results} == {T.CREATED}
    assert (await account(ledger_client, credit)).credits_posted == batch_size_max
    found = await ledger_client.lookup_transfers([t.id for t in transfers])
    assert len(found) == batch_size_max
    history = await ledger_client.get_account_transfers(
        tb.AccountFilter(
            account_id=credit,
            user_data_128=0,
            user_data_64=0,
            user_data_32=0,
            code=0,
            timestamp_min=0,
            timestamp_max=0,
            limit=batch_size_max,
            flags=tb.AccountFilterFlags.CREDITS,
        )
    )
    assert len(history) == batch_size_max
