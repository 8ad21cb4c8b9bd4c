"""A ready ledger for domain tests: platform accounts, one funded tenant, EUR/IDR/GBP/USD;
and a client wrapper that counts the requests a test's code makes."""

from __future__ import annotations

from dataclasses import dataclass

import tigerbeetle as tb

from ledger.clients import LedgerClient
from ledger.currencies import CurrencyRegistry
from ledger.netting import NettedItem
from ledger.payouts import Payout, Payouts
from ledger.service import Ledger
from ledger.statements import Statements, WalletBalance
from ledger.transfers import new_object_id
from tests.conftest import fresh_tenant_id


@dataclass
class World:
    ledger: Ledger
    payouts: Payouts
    statements: Statements
    tenant_id: int

    async def balance(self, currency: str, tenant_id: int | None = None) -> WalletBalance:
        tenant = self.tenant_id if tenant_id is None else tenant_id
        balances = await self.statements.balances(tenant)
        (found,) = [b for b in balances if b.currency == currency]
        return found

    async def new_tenant(self, deposits: dict[str, int]) -> int:
        tenant = fresh_tenant_id()
        await self.ledger.open_tenant_accounts(tenant)
        for currency, amount in deposits.items():
            await self.ledger.deposit(
                tenant_id=tenant,
                deposit_id=new_object_id(),
                currency_code=currency,
                amount_minor=amount,
            )
        return tenant


async def make_world(client: LedgerClient, deposits: dict[str, int]) -> World:
    ledger = Ledger(client, CurrencyRegistry(["EUR", "IDR", "GBP", "USD"]))
    await ledger.open_platform_accounts()
    world = World(ledger, Payouts(ledger), Statements(ledger), tenant_id=0)
    world.tenant_id = await world.new_tenant(deposits)
    return world


class CountingClient:
    """A real ledger client that counts the requests made through it: not a mock, every call
    goes to the ledger behind it, which answers."""

    def __init__(self, inner: LedgerClient) -> None:
        self.inner = inner
        self.create_transfers_sizes: list[int] = []
        self.lookup_transfers_sizes: list[int] = []

    def reset(self) -> None:
        self.create_transfers_sizes.clear()
        self.lookup_transfers_sizes.clear()

    async def create_accounts(self, accounts: list[tb.Account]) -> list[tb.CreateAccountResult]:
        return await self.inner.create_accounts(accounts)

    async def create_transfers(self, transfers: list[tb.Transfer]) -> list[tb.CreateTransferResult]:
        self.create_transfers_sizes.append(len(transfers))
        return await self.inner.create_transfers(transfers)

    async def lookup_accounts(self, accounts: list[int]) -> list[tb.Account]:
        return await self.inner.lookup_accounts(accounts)

    async def lookup_transfers(self, transfers: list[int]) -> list[tb.Transfer]:
        self.lookup_transfers_sizes.append(len(transfers))
        return await self.inner.lookup_transfers(transfers)

    async def get_account_transfers(self, filter: tb.AccountFilter) -> list[tb.Transfer]:  # noqa: A002
        return await self.inner.get_account_transfers(filter)

    async def get_account_balances(
        self,
        filter: tb.AccountFilter,  # noqa: A002
    ) -> list[tb.AccountBalance]:
        return await self.inner.get_account_balances(filter)

    async def query_accounts(self, query_filter: tb.QueryFilter) -> list[tb.Account]:
        return await self.inner.query_accounts(query_filter)

    async def query_transfers(self, query_filter: tb.QueryFilter) -> list[tb.Transfer]:
        return await self.inner.query_transfers(query_filter)

    async def close(self) -> None:
        await self.inner.close()


def payout_of_item(item: NettedItem) -> Payout:
    """A batch item as the payout the lifecycle drives (`netted`), the inverse of
    `ledger.payouts.netted_item`."""
    return Payout(
        payout_id=item.item_id,
        tenant_id=item.tenant_id,
        source_currency=item.source_currency,
        source_amount_minor=item.source_amount_minor,
        fee_minor=item.fee_minor,
        target_currency=item.target_currency,
        target_amount_minor=item.target_amount_minor,
        netted=True,
    )
