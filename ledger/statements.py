"""Balances and statements of a tenant's wallets, read from TigerBeetle.

A wallet is credit-normal: money in is a credit. `posted` is what has settled on it,
`pending` what holds and reserved payouts keep aside, and `available` what can still be spent.
A statement is the wallet's transfer history joined with the balance after each transfer
(TigerBeetle's `get_account_balances`, which the wallet's `history` flag enables).
"""

from __future__ import annotations

from typing import Literal

import msgspec
import tigerbeetle as tb

from ledger.accounts import AccountType, decode_account_id
from ledger.clients import batch_size_max
from ledger.currencies import Currency
from ledger.errors import InvalidAmount
from ledger.invariants import ensure
from ledger.service import Ledger
from ledger.transfers import TransferCode

statement_limit_max = 1000


class WalletBalance(msgspec.Struct, frozen=True, kw_only=True):
    currency: str
    available: int
    pending: int
    posted: int


class StatementEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One transfer on the wallet, and the wallet's balances right after it."""

    transfer_id: int
    object_id: int
    kind: str
    direction: Literal["credit", "debit"]  # Money in, money out.
    amount: int
    status: str  # "posted", "pending", "posting" (captures a hold) or "voiding"
    counterparty: str
    timestamp_ns: int
    balance_posted: int
    balance_pending: int


class Statement(msgspec.Struct, frozen=True, kw_only=True):
    """A page of the wallet's history in timestamp order; the next page starts after the
    last entry's `timestamp_ns` (`gateway.http.paging` makes the API's cursor of it)."""

    currency: str
    entries: list[StatementEntry]


def wallet_balance(account: tb.Account, currency: Currency) -> WalletBalance:
    posted = account.credits_posted - account.debits_posted
    pending = account.debits_pending
    ensure(posted >= 0 and posted - pending >= 0, "wallets never overdraw")
    return WalletBalance(
        currency=currency.code, available=posted - pending, pending=pending, posted=posted
    )


class Statements:
    """Balance and history reads for tenants' wallets."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    async def balances(self, tenant_id: int) -> list[WalletBalance]:
        """One balance per enabled currency whose wallet is open, sorted by currency."""
        currencies = self._ledger.currencies.enabled()
        ids = [self._ledger.wallet_id(tenant_id, currency) for currency in currencies]
        accounts = {a.id: a for a in await self._ledger.client.lookup_accounts(ids)}
        return [
            wallet_balance(accounts[account_id], currency)
            for account_id, currency in zip(ids, currencies, strict=True)
            if account_id in accounts
        ]

    async def statement(
        self, *, tenant_id: int, currency_code: str, limit: int = 100, after_ns: int = 0
    ) -> Statement:
        """The wallet's transfers after `after_ns` (a cursor), oldest first."""
        if not 0 < limit <= statement_limit_max:
            raise InvalidAmount(f"limit must be between 1 and {statement_limit_max}")
        if after_ns < 0:
            raise InvalidAmount("cursor must not be negative")
        currency = self._ledger.currencies.get(currency_code)
        wallet = self._ledger.wallet_id(tenant_id, currency)
        account_filter = tb.AccountFilter(
            account_id=wallet,
            user_data_128=0,
            user_data_64=0,
            user_data_32=0,
            code=0,
            timestamp_min=after_ns + 1,
            timestamp_max=0,
            limit=min(limit, batch_size_max),
            flags=tb.AccountFilterFlags.DEBITS | tb.AccountFilterFlags.CREDITS,
        )
        client = self._ledger.client
        transfers = await client.get_account_transfers(account_filter)
        balances = {b.timestamp: b for b in await client.get_account_balances(account_filter)}
        entries = [_entry(wallet, t, balances[t.timestamp]) for t in transfers]
        return Statement(currency=currency.code, entries=entries)


def _entry(wallet_id: int, transfer: tb.Transfer, balance: tb.AccountBalance) -> StatementEntry:
    credit = transfer.credit_account_id == wallet_id
    other = transfer.debit_account_id if credit else transfer.credit_account_id
    flags = int(transfer.flags)
    if flags & int(tb.TransferFlags.PENDING):
        status = "pending"
    elif flags & int(tb.TransferFlags.POST_PENDING_TRANSFER):
        status = "posting"
    elif flags & int(tb.TransferFlags.VOID_PENDING_TRANSFER):
        status = "voiding"
    else:
        status = "posted"
    try:
        kind = TransferCode(transfer.code).name.lower()
    except ValueError:
        kind = f"code_{transfer.code}"
    ensure(decode_account_id(wallet_id).account_type is AccountType.TENANT_WALLET, "a wallet")
    return StatementEntry(
        transfer_id=transfer.id,
        object_id=transfer.user_data_128,
        kind=kind,
        direction="credit" if credit else "debit",
        amount=transfer.amount,
        status=status,
        counterparty=_counterparty(other),
        timestamp_ns=transfer.timestamp,
        balance_posted=balance.credits_posted - balance.debits_posted,
        balance_pending=balance.debits_pending,
    )


def _counterparty(account_id: int) -> str:
    """What the other side of a wallet's transfer is: its account type, or `bucket` for a
    customer's bucket (a sub-account of the wallet itself, SPEC §11)."""
    address = decode_account_id(account_id)
    if address.account_type is AccountType.TENANT_WALLET and address.sub_account != 0:
        return "bucket"
    return address.account_type.name.lower()
