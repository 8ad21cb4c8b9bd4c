"""Which rail carries a payout: by destination corridor, then by amount (SPEC §6).

EU: SEPA Instant up to EUR 100,000, else SEPA Credit Transfer. UK: Faster Payments up to
GBP 1,000,000, else CHAPS. ID: BI-FAST up to IDR 250,000,000, else RTGS. Limits are in the
corridor currency's minor units; the amount is the payout's target amount.
"""

from __future__ import annotations

import enum

import msgspec

from ledger.errors import DomainError
from rails.bank_details import sepa_countries


class Corridor(enum.Enum):
    EU = "EU"
    UK = "UK"
    ID = "ID"


class Rail(enum.Enum):
    SEPA_INSTANT = "sepa_instant"
    SEPA_CREDIT_TRANSFER = "sepa_credit_transfer"
    FASTER_PAYMENTS = "faster_payments"
    CHAPS = "chaps"
    BI_FAST = "bi_fast"
    RTGS = "rtgs"


class CorridorRules(msgspec.Struct, frozen=True, kw_only=True):
    currency: str
    fast_rail: Rail
    fast_limit_minor: int
    large_rail: Rail


corridor_rules: dict[Corridor, CorridorRules] = {
    Corridor.EU: CorridorRules(
        currency="EUR",
        fast_rail=Rail.SEPA_INSTANT,
        fast_limit_minor=100_000_00,
        large_rail=Rail.SEPA_CREDIT_TRANSFER,
    ),
    Corridor.UK: CorridorRules(
        currency="GBP",
        fast_rail=Rail.FASTER_PAYMENTS,
        fast_limit_minor=1_000_000_00,
        large_rail=Rail.CHAPS,
    ),
    Corridor.ID: CorridorRules(
        currency="IDR",
        fast_rail=Rail.BI_FAST,
        fast_limit_minor=250_000_000_00,
        large_rail=Rail.RTGS,
    ),
}


class UnsupportedCorridor(DomainError):
    """No corridor pays out to this country in this currency."""

    code = "unsupported_corridor"


def corridor_for(*, country: str, currency: str) -> Corridor:
    """The corridor for a recipient in `country` paid in `currency`."""
    if country == "GB":
        corridor = Corridor.UK
    elif country == "ID":
        corridor = Corridor.ID
    elif country in sepa_countries:
        corridor = Corridor.EU
    else:
        raise UnsupportedCorridor(f"Kovra does not pay out to {country!r}")
    if corridor_rules[corridor].currency != currency:
        raise UnsupportedCorridor(
            f"payouts to {country} are in {corridor_rules[corridor].currency}, not {currency}"
        )
    return corridor


def choose_rail(corridor: Corridor, *, amount_minor: int) -> Rail:
    """The fast rail up to its limit (inclusive), the large-value rail above it."""
    rules = corridor_rules[corridor]
    return rules.fast_rail if amount_minor <= rules.fast_limit_minor else rules.large_rail
