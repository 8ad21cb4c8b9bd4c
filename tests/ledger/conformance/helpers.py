"""Small builders shared by the conformance tests: accounts and transfers with fresh ids."""

from __future__ import annotations

import tigerbeetle as tb

from ledger.clients import LedgerClient
from tests.conftest import fresh_id

T = tb.CreateTransferStatus
A = tb.CreateAccountStatus
AF = tb.AccountFlags
TF = tb.TransferFlags
ledger_eur = 978
ledger_idr = 360


async def open_accounts(
    client: LedgerClient, *flags: tb.AccountFlags, ledger: int = ledger_eur
) -> list[int]:
    """Create one account per entry of `flags` on `ledger`; return their ids."""
    accounts = [tb.Account(id=fresh_id(), ledger=ledger, code=1, flags=f) for f in flags]
    results = await client.create_accounts(accounts)
    assert [r.status for r in results] == [A.CREATED] * len(accounts)
    return [a.id for a in accounts]


def transfer(
    debit: int, credit: int, amount: int, *, ledger: int = ledger_eur, **fields: object
) -> tb.Transfer:
    values: dict[str, object] = {
        "id": fresh_id(),
        "debit_account_id": debit,
        "credit_account_id": credit,
        "amount": amount,
        "ledger": ledger,
        "code": 1,
    }
    values.update(fields)
    return tb.Transfer(**values)  # type: ignore[arg-type]


async def statuses(client: LedgerClient, transfers: list[tb.Transfer]) -> list[T]:
    return [r.status for r in await client.create_transfers(transfers)]


async def account(client: LedgerClient, account_id: int) -> tb.Account:
    (found,) = await client.lookup_accounts([account_id])
    return found


def account_filter(account_id: int, **fields: object) -> tb.AccountFilter:
    values: dict[str, object] = {
        "account_id": account_id,
        "user_data_128": 0,
        "user_data_64": 0,
        "user_data_32": 0,
        "code": 0,
        "timestamp_min": 0,
        "timestamp_max": 0,
        "limit": 100,
        "flags": tb.AccountFilterFlags.DEBITS | tb.AccountFilterFlags.CREDITS,
    }
    values.update(fields)
    return tb.AccountFilter(**values)  # type: ignore[arg-type]


def query_filter(**fields: object) -> tb.QueryFilter:
    values: dict[str, object] = {
        "user_data_128": 0,
        "user_data_64": 0,
        "user_data_32": 0,
        "ledger": 0,
        "code": 0,
        "timestamp_min": 0,
        "timestamp_max": 0,
        "limit": 100,
        "flags": tb.QueryFilterFlags.NONE,
    }
    values.update(fields)
    return tb.QueryFilter(**values)  # type: ignore[arg-type]
