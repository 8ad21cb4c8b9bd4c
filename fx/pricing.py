"""Pricing a conversion: the customer rate, the fee, and both amounts in minor units.

Every rounding favours the platform, at each currency's ISO minor units: the customer rate
is the mid rate less the tier's margin, rounded down; a target amount bought with a given
source amount is rounded down; a source amount needed for a given target amount is rounded
up; fees are rounded up. Amounts are integers; only rates are decimals.

Each conversion is computed exactly, as a fraction, and rounded once. Decimal arithmetic
keeps 28 significant digits: a large amount times a ten-place rate has more, and rounding
the product first could carry it across a whole minor unit before the floor or ceiling
(5 x 10^17 cents at 160.12... yen per euro bought one yen too many).
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from fractions import Fraction

import msgspec

from ledger.currencies import Currency
from ledger.errors import InvalidAmount
from ledger.service import amount_minor_max

basis_points = 10_000
rate_decimal_places = 10
_rate_quantum = Decimal(1).scaleb(-rate_decimal_places)
usd_minor_units = 2  # ISO 4217: the fixed fee of a pricing policy is set in US cents.


class Pricing(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant's pricing policy, as the quote needs it."""

    margin_bps: int
    fee_bps: int = 0
    fee_fixed_usd_minor: int = 0


class QuoteTerms(msgspec.Struct, frozen=True, kw_only=True):
    source_currency: str
    target_currency: str
    source_amount: int
    target_amount: int
    fee_amount: int
    mid_rate: Decimal
    rate: Decimal
    margin_bps: int
    rate_observed_at: datetime.datetime


def customer_rate(mid: Decimal, margin_bps: int) -> Decimal:
    """The mid rate less the margin, cut to `rate_decimal_places` (never rounded up)."""
    if not 0 <= margin_bps < basis_points:
        raise ValueError("margin_bps must be in [0, 10000)")
    numerator, denominator = _scaled(
        basis_points - margin_bps, mid.as_integer_ratio(), shift=rate_decimal_places
    )
    return Decimal(numerator // (denominator * basis_points)).scaleb(-rate_decimal_places)


def converted_minor(
    *, amount_minor: int, source: Currency, target: Currency, rate: Decimal
) -> Fraction:
    """`amount_minor` of `source` at `rate` (target per source), exactly, in minor units of
    `target`: the caller rounds it once, the way its rule says."""
    return Fraction(
        *_scaled(
            amount_minor, rate.as_integer_ratio(), shift=target.minor_units - source.minor_units
        )
    )


def source_needed_minor(
    *, amount_minor: int, source: Currency, target: Currency, rate: Decimal
) -> Fraction:
    """The exact amount of `source` (minor units) that buys `amount_minor` of `target` at
    `rate` (target per source)."""
    return Fraction(
        *_scaled(amount_minor, _inverse(rate), shift=source.minor_units - target.minor_units)
    )


def _scaled(amount_minor: int, factor: tuple[int, int], *, shift: int) -> tuple[int, int]:
    """`amount_minor * factor * 10**shift` exactly, as (numerator, denominator) integers, for
    a factor given as (numerator, denominator): a finite Decimal is such a ratio
    (`as_integer_ratio`), and integer arithmetic rounds nothing (and costs a fraction of
    `Fraction`'s, on every quote and every admission)."""
    numerator, denominator = factor
    if shift >= 0:
        return amount_minor * numerator * 10**shift, denominator
    return amount_minor * numerator, denominator * 10**-shift


def _inverse(rate: Decimal) -> tuple[int, int]:
    numerator, denominator = rate.as_integer_ratio()
    return denominator, numerator


def fee_share_minor(source_amount_minor: int, fee_bps: int) -> int:
    """The percentage part of a fee, `fee_bps` of the source amount, rounded up."""
    return -(-source_amount_minor * fee_bps // basis_points)


def price(
    *,
    source: Currency,
    target: Currency,
    mid: Decimal,
    mid_observed_at: datetime.datetime,
    pricing: Pricing,
    usd_to_source_mid: Decimal,
    source_amount: int | None = None,
    target_amount: int | None = None,
) -> QuoteTerms:
    """Price a conversion given exactly one of the amounts (minor units)."""
    if (source_amount is None) == (target_amount is None):
        raise InvalidAmount("give exactly one of source_amount and target_amount")
    margin = 0 if source == target else pricing.margin_bps
    rate = Decimal(1) if source == target else customer_rate(mid, margin)
    if source_amount is not None:
        numerator, denominator = _scaled(
            source_amount, rate.as_integer_ratio(), shift=target.minor_units - source.minor_units
        )
        target_amount = numerator // denominator
    else:
        assert target_amount is not None  # Exactly one is given; checked above.
        numerator, denominator = _scaled(
            target_amount, _inverse(rate), shift=source.minor_units - target.minor_units
        )
        source_amount = -(-numerator // denominator)
    if source_amount < 1 or target_amount < 1:
        raise InvalidAmount("the amount is too small to convert into one minor unit")
    if max(source_amount, target_amount) > amount_minor_max:
        raise InvalidAmount("the converted amount is too large")
    fee = _fee(source_amount, source, pricing, usd_to_source_mid)
    return QuoteTerms(
        source_currency=source.code,
        target_currency=target.code,
        source_amount=source_amount,
        target_amount=target_amount,
        fee_amount=fee,
        mid_rate=mid.quantize(_rate_quantum),
        rate=rate,
        margin_bps=margin,
        rate_observed_at=mid_observed_at,
    )


def usd_equivalent_minor(*, amount_minor: int, currency: Currency, to_usd_mid: Decimal) -> int:
    """`amount_minor` of `currency` in US cents at the mid rate `to_usd_mid`, rounded up and
    at least one cent: what a payout counts against its tenant's daily limit."""
    numerator, denominator = _scaled(
        amount_minor, to_usd_mid.as_integer_ratio(), shift=usd_minor_units - currency.minor_units
    )
    return max(1, -(-numerator // denominator))


def _fee(source_amount: int, source: Currency, pricing: Pricing, usd_to_source: Decimal) -> int:
    """A share of the source amount plus a fixed fee set in USD, both rounded up."""
    numerator, denominator = _scaled(
        pricing.fee_fixed_usd_minor,
        usd_to_source.as_integer_ratio(),
        shift=source.minor_units - usd_minor_units,
    )
    return fee_share_minor(source_amount, pricing.fee_bps) - (-numerator // denominator)
