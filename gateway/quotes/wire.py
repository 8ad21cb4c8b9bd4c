"""The JSON shapes of FX quotes and of the admin plane's rate table."""

from __future__ import annotations

import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from gateway.http.wire import AmountMinor, CurrencyCode, IssuedCurrencyCode, Money


class QuoteCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Exactly one of `source_amount` and `target_amount`."""

    source_currency: CurrencyCode
    target_currency: CurrencyCode
    source_amount: AmountMinor | None = None
    target_amount: AmountMinor | None = None


class FxRatesUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Rates as decimal strings by "BASE/QUOTE" pair, observed now unless `observed_at`."""

    rates: Annotated[dict[str, Annotated[str, Meta(max_length=40)]], Meta(max_length=500)]
    observed_at: datetime.datetime | None = None


class Quote(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: str = "quote"
    source_currency: IssuedCurrencyCode
    target_currency: IssuedCurrencyCode
    source_amount: int
    target_amount: int
    rate: str
    mid_rate: str
    margin_bps: int
    fee: Money
    status: Literal["active", "used", "expired"]
    rate_observed_at: datetime.datetime
    created_at: datetime.datetime
    expires_at: datetime.datetime
