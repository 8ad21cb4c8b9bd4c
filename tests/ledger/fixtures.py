"""A ready ledger for domain tests: platform accounts, one funded tenant, EUR/IDR/GBP/USD."""

from __future__ import annotations

from dataclasses import dataclass

from ledger.clients import LedgerClient
from ledger.currencies import CurrencyRegistry
from ledger.payouts import Payouts
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
