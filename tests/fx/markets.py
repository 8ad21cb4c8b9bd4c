"""Currencies of every ISO 4217 minor-unit count and realistic rates between them, for the
pricing and netting properties.

A property that only prices euros against dollars at a rate near one cannot see a rounding
done at the wrong currency's minor units or a rate applied in the wrong direction. Here the
currencies have 0 (JPY, KRW, CLP, ISK, VND, UGX), 2 (EUR, GBP, USD, IDR), 3 (KWD, BHD, JOD,
OMR, TND) and 4 (CLF) decimals, and a mid rate is what one unit of the source is worth in
the target, around the market value of each, cut to the ten places quotes carry.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from fractions import Fraction

from hypothesis import strategies as st

from ledger.currencies import CurrencyRegistry

# Roughly what one unit of each currency is worth in US dollars, and its ISO 4217 minor
# units as the standard lists them (written here, not read from the code under test).
markets = {
    "JPY": (Decimal("0.0067"), 0),
    "KRW": (Decimal("0.00073"), 0),
    "CLP": (Decimal("0.00105"), 0),
    "ISK": (Decimal("0.0072"), 0),
    "VND": (Decimal("0.000039"), 0),
    "UGX": (Decimal("0.00027"), 0),
    "EUR": (Decimal("1.08"), 2),
    "GBP": (Decimal("1.27"), 2),
    "USD": (Decimal(1), 2),
    "IDR": (Decimal("0.000062"), 2),
    "KWD": (Decimal("3.25"), 3),
    "BHD": (Decimal("2.65"), 3),
    "JOD": (Decimal("1.41"), 3),
    "OMR": (Decimal("2.60"), 3),
    "TND": (Decimal("0.32"), 3),
    "CLF": (Decimal("36.4"), 4),
}
usd_value = {code: value for code, (value, _) in markets.items()}
registry = CurrencyRegistry(usd_value)
codes = st.sampled_from(sorted(usd_value))
rate_places = Decimal(1).scaleb(-10)
# A market moves: each rate is its currency pair's value times a factor from 1/2 to 2.
drift_per_mille = st.integers(min_value=500, max_value=2_000)


def mid_rate(source: str, target: str, drift: int) -> Decimal:
    """What one unit of `source` is worth in `target`, moved by `drift` per mille (one
    for a currency in itself)."""
    if source == target:
        return Decimal(1)
    value = usd_value[source] / usd_value[target] * drift / 1_000
    return max(value.quantize(rate_places, rounding=ROUND_DOWN), rate_places)


@st.composite
def pairs_with_rates(draw: st.DrawFn) -> tuple[str, str, Decimal]:
    """A source, a target (possibly the same) and the source's mid rate in the target."""
    source, target = draw(codes), draw(codes)
    return source, target, mid_rate(source, target, draw(drift_per_mille))


def minor_scale(code: str) -> Fraction:
    """Minor units per major unit of `code`."""
    return Fraction(10) ** markets[code][1]


def near_whole_unit(draw: st.DrawFn, *, per_unit: Fraction, bound: int) -> int:
    """A whole amount in 1..`bound` that `per_unit` (a positive rational) carries to one or
    two parts in its denominator of a whole unit, just below or just above it: the amounts
    where a rounding done too early, or the wrong way, changes the floor or the ceiling."""
    numerator, denominator = per_unit.numerator, per_unit.denominator
    if denominator == 1:
        return draw(st.integers(min_value=1, max_value=bound))
    offset = draw(st.sampled_from([-1, 1, -2, 2]))
    # amount * numerator = offset (mod denominator): the product's fraction is offset/denominator.
    first = offset * pow(numerator, -1, denominator) % denominator or denominator
    if first > bound:
        return draw(st.integers(min_value=1, max_value=bound))
    # The largest amounts too, where arithmetic to a fixed number of digits shows.
    periods = (bound - first) // denominator
    period = draw(st.integers(0, periods) | st.integers(periods // 10, periods) | st.just(periods))
    return first + denominator * period
