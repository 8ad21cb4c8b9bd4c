"""Kovra's money operations on the ledger: accounts, deposits, liquidity and holds.

Each operation computes its account ids and derives its transfer ids from the API object's
id, so it needs no database read and a retry can never move money twice. Payouts and
currency exchange are in `ledger.payouts`; balances and statements in `ledger.statements`.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import tigerbeetle as tb

from ledger.accounts import (
    AccountType,
    new_account,
    platform_account_id,
    platform_tenant_id,
    tenant_account_id,
)
from ledger.clients import LedgerClient
from ledger.currencies import Currency, CurrencyRegistry
from ledger.errors import HoldAlreadyCaptured, InvalidAmount, LedgerIdConflict
from ledger.outcomes import check_account_results, check_transfer_results
from ledger.transfers import Leg, TransferCode, transfer_id

# Amounts are integers in minor units. The bound keeps every sum far inside u128 and
# rejects typos (10^18 minor units is ten quadrillion euros).
amount_minor_max = 10**18
hold_timeout_seconds_max = 30 * 24 * 3600
tenant_account_types = (
    AccountType.TENANT_WALLET,
    AccountType.PENDING_INBOUND,
    AccountType.PENDING_OUTBOUND,
)
platform_account_types = (
    AccountType.FEE_REVENUE,
    AccountType.FX_POSITION,
    AccountType.REGIONAL_SETTLEMENT,
    AccountType.SUSPENSE,
)


class Posted(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of a ledger operation: its transfer id and TigerBeetle timestamp (ns), and
    whether an earlier attempt had applied it already (`existed`: this call was a retry)."""

    transfer_id: int
    timestamp_ns: int
    existed: bool = False


def validate_amount(amount_minor: int, *, field: str = "amount") -> int:
    """`amount_minor` if it is a positive integer within `amount_minor_max`."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise InvalidAmount(f"{field} must be an integer number of minor units")
    if not 0 < amount_minor <= amount_minor_max:
        raise InvalidAmount(f"{field} must be between 1 and {amount_minor_max} minor units")
    return amount_minor


class Ledger:
    """The ledger operations over one shared `LedgerClient`."""

    def __init__(self, client: LedgerClient, currencies: CurrencyRegistry) -> None:
        self.client = client
        self.currencies = currencies

    # ----------------------------------------------------------------------------------
    # Accounts.

    async def open_platform_accounts(self) -> None:
        """Open the platform's fee, FX-position and settlement accounts in every currency."""
        accounts = [
            new_account(platform_account_id(account_type, currency.number))
            for currency in self.currencies.enabled()
            for account_type in platform_account_types
        ]
        check_account_results(accounts, await self.client.create_accounts(accounts))

    async def open_tenant_accounts(
        self, tenant_id: int, currency_codes: Sequence[str] | None = None
    ) -> None:
        """Open a tenant's wallet and pending accounts per currency (all enabled by default)."""
        currencies = (
            self.currencies.enabled()
            if currency_codes is None
            else tuple(self.currencies.get(code) for code in currency_codes)
        )
        accounts = [
            new_account(tenant_account_id(tenant_id, account_type, currency.number))
            for currency in currencies
            for account_type in tenant_account_types
        ]
        check_account_results(accounts, await self.client.create_accounts(accounts))

    def wallet_id(self, tenant_id: int, currency: Currency) -> int:
        return tenant_account_id(tenant_id, AccountType.TENANT_WALLET, currency.number)

    # ----------------------------------------------------------------------------------
    # Money in: deposits (sandbox) and platform liquidity.

    async def deposit(
        self, *, tenant_id: int, deposit_id: int, currency_code: str, amount_minor: int
    ) -> Posted:
        """Credit the tenant's wallet from the regional settlement account (money received)."""
        currency = self.currencies.get(currency_code)
        return await self._post_single(
            tb.Transfer(
                id=transfer_id(object_id=deposit_id, leg=Leg.DEPOSIT),
                debit_account_id=platform_account_id(
                    AccountType.REGIONAL_SETTLEMENT, currency.number
                ),
                credit_account_id=self.wallet_id(tenant_id, currency),
                amount=validate_amount(amount_minor),
                ledger=currency.number,
                code=TransferCode.DEPOSIT,
                user_data_128=deposit_id,
                user_data_64=tenant_id,
            )
        )

    async def fund_liquidity(
        self, *, funding_id: int, currency_code: str, amount_minor: int
    ) -> Posted:
        """Fund the platform's FX position in a currency from its settlement account."""
        currency = self.currencies.get(currency_code)
        return await self._post_single(
            tb.Transfer(
                id=transfer_id(object_id=funding_id, leg=Leg.LIQUIDITY_FUNDING),
                debit_account_id=platform_account_id(
                    AccountType.REGIONAL_SETTLEMENT, currency.number
                ),
                credit_account_id=platform_account_id(AccountType.FX_POSITION, currency.number),
                amount=validate_amount(amount_minor),
                ledger=currency.number,
                code=TransferCode.LIQUIDITY_FUNDING,
                user_data_128=funding_id,
                user_data_64=platform_tenant_id,
            )
        )

    # ----------------------------------------------------------------------------------
    # Holds: pending transfers from the wallet, captured (fully or partly) or voided.

    async def hold(
        self,
        *,
        tenant_id: int,
        hold_id: int,
        currency_code: str,
        amount_minor: int,
        timeout_seconds: int = 0,
    ) -> Posted:
        """Reserve `amount_minor` of the wallet; TigerBeetle releases it after the timeout."""
        currency = self.currencies.get(currency_code)
        if not 0 <= timeout_seconds <= hold_timeout_seconds_max:
            raise InvalidAmount(f"timeout_seconds must be between 0 and {hold_timeout_seconds_max}")
        return await self._post_single(
            tb.Transfer(
                id=transfer_id(object_id=hold_id, leg=Leg.HOLD),
                debit_account_id=self.wallet_id(tenant_id, currency),
                credit_account_id=tenant_account_id(
                    tenant_id, AccountType.PENDING_OUTBOUND, currency.number
                ),
                amount=validate_amount(amount_minor),
                ledger=currency.number,
                code=TransferCode.HOLD,
                flags=tb.TransferFlags.PENDING,
                timeout=timeout_seconds,
                user_data_128=hold_id,
                user_data_64=tenant_id,
            )
        )

    async def capture_hold(
        self, *, tenant_id: int, hold_id: int, currency_code: str, amount_minor: int | None = None
    ) -> Posted:
        """Post the hold: all of it (`amount_minor=None`) or part, releasing the rest."""
        currency = self.currencies.get(currency_code)
        amount = tb.AMOUNT_MAX if amount_minor is None else validate_amount(amount_minor)
        try:
            return await self._post_single(
                self._resolve_hold(tenant_id, hold_id, currency, Leg.HOLD_CAPTURE, amount)
            )
        except LedgerIdConflict:
            # The capture's id derives from the hold's, and only the amount can differ: an
            # earlier capture of another amount posted the hold. (The same amount again is
            # the same capture, and succeeds.)
            raise HoldAlreadyCaptured("the hold was already captured, for another amount") from None

    async def void_hold(self, *, tenant_id: int, hold_id: int, currency_code: str) -> Posted:
        """Release the whole hold back to the wallet."""
        currency = self.currencies.get(currency_code)
        return await self._post_single(
            self._resolve_hold(tenant_id, hold_id, currency, Leg.HOLD_VOID, 0)
        )

    def _resolve_hold(
        self, tenant_id: int, hold_id: int, currency: Currency, leg: Leg, amount: int
    ) -> tb.Transfer:
        # Naming the tenant's own accounts makes TigerBeetle refuse another tenant's hold
        # (pending_transfer_has_different_debit_account_id), whatever the metadata says.
        flags = (
            tb.TransferFlags.POST_PENDING_TRANSFER
            if leg is Leg.HOLD_CAPTURE
            else tb.TransferFlags.VOID_PENDING_TRANSFER
        )
        return tb.Transfer(
            id=transfer_id(object_id=hold_id, leg=leg),
            pending_id=transfer_id(object_id=hold_id, leg=Leg.HOLD),
            debit_account_id=self.wallet_id(tenant_id, currency),
            credit_account_id=tenant_account_id(
                tenant_id, AccountType.PENDING_OUTBOUND, currency.number
            ),
            amount=amount,
            ledger=currency.number,
            code=TransferCode.HOLD,
            flags=flags,
            user_data_128=hold_id,
            user_data_64=tenant_id,
        )

    async def _post_single(self, transfer: tb.Transfer) -> Posted:
        results = await self.client.create_transfers([transfer])
        timestamps = check_transfer_results([transfer], results)
        return Posted(transfer_id=transfer.id, timestamp_ns=timestamps[0])
