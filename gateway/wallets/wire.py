"""The JSON shapes of deposits, holds, balances, statements and platform liquidity."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from gateway.http.wire import AmountMinor, CurrencyCode, IssuedCurrencyCode, Reference, Timestamp
from ledger.service import hold_timeout_seconds_max

TimeoutSeconds = Annotated[int, Meta(ge=0, le=hold_timeout_seconds_max)]


class DepositCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    currency: CurrencyCode
    amount: AmountMinor
    reference: Reference | None = None


class HoldCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    currency: CurrencyCode
    amount: AmountMinor
    timeout_seconds: TimeoutSeconds = 0
    reference: Reference | None = None


class HoldCapture(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    amount: AmountMinor | None = None


class HoldVoid(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Voiding takes no fields; an empty object (or no body) is accepted."""


class LiquidityFund(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    currency: CurrencyCode
    amount: AmountMinor
    reference: Reference | None = None


class Balance(msgspec.Struct, frozen=True, kw_only=True):
    currency: IssuedCurrencyCode
    available: int
    pending: int
    posted: int


class BalanceList(msgspec.Struct, frozen=True, kw_only=True):
    data: list[Balance]


class Deposit(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: str = "deposit"
    currency: IssuedCurrencyCode
    amount: int
    reference: str | None
    status: str
    created_at: Timestamp


class Hold(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: str = "hold"
    currency: IssuedCurrencyCode
    amount: int
    captured_amount: int
    status: Literal["pending", "captured", "voided", "expired"]
    timeout_seconds: int
    expires_at: Timestamp | None
    reference: str | None
    created_at: Timestamp


class StatementEntry(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object_id: str
    type: str
    direction: Literal["credit", "debit"]
    amount: int
    currency: IssuedCurrencyCode
    status: str
    balance_posted: int
    balance_pending: int
    created_at: Timestamp


class StatementPage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[StatementEntry]
    next_cursor: str | None


class Funding(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    currency: IssuedCurrencyCode
    amount: int
    created_at: Timestamp
