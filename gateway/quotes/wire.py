"""The JSON shapes of FX quotes and of the admin plane's rate table."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import Meta

from fx.rates import rate_digits_max
from fx.sources import feed_rates_max
from gateway.http.wire import (
    AmountMinor,
    CurrencyCode,
    IssuedCurrencyCode,
    Money,
    Timestamp,
    exactly_one_of,
)


class QuoteCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Exactly one of `source_amount` and `target_amount`."""

    json_schema_extra: ClassVar[dict[str, Any]] = exactly_one_of("source_amount", "target_amount")

    source_currency: CurrencyCode
    target_currency: CurrencyCode
    source_amount: AmountMinor | None = None
    target_amount: AmountMinor | None = None


CurrencyPair = Annotated[
    str, Meta(pattern="^[A-Z]{3}/[A-Z]{3}$", description="BASE/QUOTE, ISO 4217 codes")
]
# A positive decimal without exponent or sign, of at most `rate_digits_max` digits.
Rate = Annotated[
    str,
    Meta(
        pattern=r"^(?:[0-9]*[1-9][0-9]*(?:\.[0-9]+)?|0+\.[0-9]*[1-9][0-9]*)$",
        max_length=rate_digits_max,
        description="a positive decimal: units of QUOTE per unit of BASE",
    ),
]


class FxRatesUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Rates as decimal strings by "BASE/QUOTE" pair, observed now unless `observed_at`."""

    rates: Annotated[dict[CurrencyPair, Rate], Meta(max_length=feed_rates_max)]
    observed_at: Timestamp | None = None


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
    rate_observed_at: Timestamp
    created_at: Timestamp
    expires_at: Timestamp
