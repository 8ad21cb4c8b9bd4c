"""The income forecast as a pure function: from the days a customer received money (and how
much), when the next income is expected, how much, and how sure that is.

The method is deliberately simple and robust to an odd month: the median interval between
days with income and the median amount per day. Confidence comes from the dispersion of each:
`1 - MAD / median` (MAD, the median absolute deviation from the median), clamped to [0, 1],
for the intervals and for the amounts, and the two multiplied. A perfectly regular series is
confidence 1; one whose deviations are as large as its median is 0. Fewer than
`observations_min` days give no forecast.

Everything is exact: amounts are integers in minor units, medians and ratios are `Fraction`s,
and only the confidence leaves as a float, rounded to `confidence_digits`. A median of an
even count is the mean of the middle two, rounded half up to a whole day or minor unit.
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Sequence
from fractions import Fraction

import msgspec

from ledger.invariants import ensure

observations_min = 3
confidence_digits = 4


class Forecast(msgspec.Struct, frozen=True, kw_only=True):
    """The expected next income, or none (`next_date` None and confidence 0)."""

    next_date: datetime.date | None
    next_amount_minor: int | None
    interval_days: int | None
    confidence: float
    observations: int


def daily_totals(
    observations: Sequence[tuple[datetime.date, int]],
) -> list[tuple[datetime.date, int]]:
    """The observations summed per day, oldest first: two collections on one day are one
    day's income."""
    totals: dict[datetime.date, int] = {}
    for day, amount_minor in observations:
        ensure(amount_minor > 0, "an observation is a positive amount")
        totals[day] = totals.get(day, 0) + amount_minor
    return sorted(totals.items())


def median(values: Sequence[Fraction]) -> Fraction:
    """The exact median of a non-empty list: the middle value, or the mean of the two."""
    ensure(len(values) > 0, "a median needs a value")
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2 == 1:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def rounded(value: Fraction) -> int:
    """`value` to the nearest integer, halves up (values here are never negative)."""
    return int(value + Fraction(1, 2)) if value >= 0 else -int(-value + Fraction(1, 2))


def regularity(values: Sequence[Fraction]) -> Fraction:
    """1 - MAD / median, clamped to [0, 1]; 0 for a median of 0 (nothing regular about it)."""
    centre = median(values)
    if centre <= 0:
        return Fraction(0)
    spread = median([abs(value - centre) for value in values])
    return min(Fraction(1), max(Fraction(0), 1 - spread / centre))


def forecast(observations: Sequence[tuple[datetime.date, int]]) -> Forecast:
    """The forecast from (day, amount in minor units) observations, in any order."""
    days = daily_totals(observations)
    if len(days) < observations_min:
        return Forecast(
            next_date=None,
            next_amount_minor=None,
            interval_days=None,
            confidence=0.0,
            observations=len(days),
        )
    intervals = [
        Fraction((later - earlier).days) for (earlier, _), (later, _) in itertools.pairwise(days)
    ]
    amounts = [Fraction(amount) for _, amount in days]
    interval_days = rounded(median(intervals))
    confidence = regularity(intervals) * regularity(amounts)
    return Forecast(
        next_date=days[-1][0] + datetime.timedelta(days=interval_days),
        next_amount_minor=rounded(median(amounts)),
        interval_days=interval_days,
        confidence=round(float(confidence), confidence_digits),
        observations=len(days),
    )
