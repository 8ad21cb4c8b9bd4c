"""Money in from the bank: a bank statement's credit entries moved into the ledger.

The currency's REGIONAL_SETTLEMENT account mirrors the platform's settlement bank account,
so money the bank booked in is a debit of it and a credit of where the money belongs:

- the wallet of the tenant whose funding reference the entry carries (`FUNDING_CREDIT`);
- else SUSPENSE, the platform's account for money no wallet owns yet (`SUSPENSE_CREDIT`),
  which a person later releases to a tenant's wallet (`SUSPENSE_RELEASE`).

Every transfer id derives from the bank entry's id (itself derived from the account and the
bank's reference for the entry) and the leg, and the entry id rides in `user_data_128`: the
same entry seen in a notification and again in the statement, a file ingested twice, or an
ingestion repeated after a crash re-submits the very same transfers, which TigerBeetle
answers `exists`. Credits go in batches, one request per `batch_size_max` entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import msgspec
import tigerbeetle as tb

from ledger.accounts import AccountType, platform_account_id, platform_tenant_id, tenant_account_id
from ledger.clients import LedgerClient
from ledger.currencies import CurrencyRegistry
from ledger.invariants import ensure, unreachable
from ledger.outcomes import check_transfer_results
from ledger.service import Posted, validate_amount
from ledger.transfers import Leg, TransferCode, transfer_id

# TigerBeetle's own bound on the events of one request.
batch_size_max = 8189

T = tb.CreateTransferStatus
# What became of one credit: moved (now or by an earlier attempt), or refused because the
# tenant has no wallet in the currency (the caller sends the money to suspense instead).
CreditOutcome = Literal["moved", "wallet_not_open"]


class EntryCredit(msgspec.Struct, frozen=True, kw_only=True):
    """One bank entry's money, to the tenant's wallet or, with `tenant_id` None, to
    suspense."""

    entry_id: int
    tenant_id: int | None
    currency_code: str
    amount_minor: int


class BankFunding:
    """The ledger side of bank statements: entry_credits to wallets and suspense, and releases."""

    def __init__(self, client: LedgerClient, currencies: CurrencyRegistry) -> None:
        self._client = client
        self._currencies = currencies

    def credit_transfer(self, credit: EntryCredit) -> tb.Transfer:
        """The transfer that moves `credit`'s money from the settlement account."""
        currency = self._currencies.get(credit.currency_code)
        to_wallet = credit.tenant_id is not None
        return tb.Transfer(
            id=transfer_id(
                object_id=credit.entry_id,
                leg=Leg.FUNDING_CREDIT if to_wallet else Leg.SUSPENSE_CREDIT,
            ),
            debit_account_id=platform_account_id(AccountType.REGIONAL_SETTLEMENT, currency.number),
            credit_account_id=(
                tenant_account_id(credit.tenant_id, AccountType.TENANT_WALLET, currency.number)
                if credit.tenant_id is not None
                else platform_account_id(AccountType.SUSPENSE, currency.number)
            ),
            amount=validate_amount(credit.amount_minor),
            ledger=currency.number,
            code=TransferCode.FUNDING_CREDIT if to_wallet else TransferCode.SUSPENSE_CREDIT,
            user_data_128=credit.entry_id,
            user_data_64=credit.tenant_id if credit.tenant_id is not None else platform_tenant_id,
        )

    async def credit(self, entry_credits: Sequence[EntryCredit]) -> dict[int, CreditOutcome]:
        """Move every credit, `batch_size_max` to a request; the outcome of each by entry
        id. Any refusal other than a missing wallet is raised (as `ledger.outcomes` types it):
        nothing Kovra builds here can earn one."""
        outcomes: dict[int, CreditOutcome] = {}
        for start in range(0, len(entry_credits), batch_size_max):
            chunk = entry_credits[start : start + batch_size_max]
            transfers = [self.credit_transfer(credit) for credit in chunk]
            results = await self._client.create_transfers(transfers)
            ensure(len(results) == len(transfers), "one result per transfer")
            for credit, transfer, result in zip(chunk, transfers, results, strict=True):
                outcomes[credit.entry_id] = _outcome(credit, transfer, result)
        return outcomes

    async def release(
        self, *, entry_id: int, tenant_id: int, currency_code: str, amount_minor: int
    ) -> Posted:
        """Release a suspense entry's money to the tenant's wallet, once: the transfer id
        derives from the entry, so a second release (to anyone) is the same transfer or a
        conflict (`LedgerIdConflict`), never a second move."""
        currency = self._currencies.get(currency_code)
        transfer = tb.Transfer(
            id=transfer_id(object_id=entry_id, leg=Leg.SUSPENSE_RELEASE),
            debit_account_id=platform_account_id(AccountType.SUSPENSE, currency.number),
            credit_account_id=tenant_account_id(
                tenant_id, AccountType.TENANT_WALLET, currency.number
            ),
            amount=validate_amount(amount_minor),
            ledger=currency.number,
            code=TransferCode.SUSPENSE_RELEASE,
            user_data_128=entry_id,
            user_data_64=tenant_id,
        )
        results = await self._client.create_transfers([transfer])
        timestamps = check_transfer_results([transfer], results)
        return Posted(transfer_id=transfer.id, timestamp_ns=timestamps[0])


def _outcome(
    credit: EntryCredit, transfer: tb.Transfer, result: tb.CreateTransferResult
) -> CreditOutcome:
    match result.status:
        case T.CREATED | T.EXISTS:
            return "moved"
        case T.CREDIT_ACCOUNT_NOT_FOUND if credit.tenant_id is not None:
            return "wallet_not_open"
        case T.ID_ALREADY_FAILED if credit.tenant_id is not None:
            # An earlier attempt was refused for the missing wallet (the only refusal a
            # wallet credit can earn); TigerBeetle keeps that answer for the id for good.
            return "wallet_not_open"
        case _:
            check_transfer_results([transfer], [result])
            unreachable(f"a funding credit answered {result.status.name} and was not refused")
