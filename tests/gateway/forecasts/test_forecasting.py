"""The income forecast function: hand-computed medians, dispersions and confidences; income
on one day summed; fewer than three days give no forecast; and, as properties, confidence is
always in [0, 1] and a perfectly regular series is forecast exactly with confidence 1."""

from __future__ import annotations

import datetime

from hypothesis import given
from hypothesis import strategies as st

from gateway.forecasts.forecasting import Forecast, forecast


def day(text: str) -> datetime.date:
    return datetime.date.fromisoformat(text)


def test_a_monthly_income_of_varying_amounts() -> None:
    # Intervals 30, 30, 30: median 30, MAD 0, regularity 1. Amounts 1000, 1200, 1000, 1100:
    # median 1050; deviations 50, 150, 50, 50: MAD 50; regularity 1 - 50/1050 = 20/21.
    observed = [
        (day("2026-01-01"), 1_000),
        (day("2026-01-31"), 1_200),
        (day("2026-03-02"), 1_000),
        (day("2026-04-01"), 1_100),
    ]
    assert forecast(observed) == Forecast(
        next_date=day("2026-05-01"),
        next_amount_minor=1_050,
        interval_days=30,
        confidence=0.9524,
        observations=4,
    )


def test_an_even_count_of_intervals_rounds_the_median_half_up() -> None:
    # Intervals 30, 31, 28, 35: median 30.5, rounded to 31; deviations 0.5, 0.5, 2.5, 4.5:
    # MAD 1.5; regularity 1 - 1.5/30.5 = 58/61 = 0.95082. Amounts all 500: regularity 1.
    observed = [
        (day("2026-05-05"), 500),
        (day("2026-01-01"), 200),  # In any order; and two on one day are that day's income.
        (day("2026-01-01"), 300),
        (day("2026-01-31"), 500),
        (day("2026-03-03"), 500),
        (day("2026-03-31"), 500),
    ]
    assert forecast(observed) == Forecast(
        next_date=day("2026-06-05"),
        next_amount_minor=500,
        interval_days=31,
        confidence=0.9508,
        observations=5,
    )


def test_an_irregular_series_has_no_confidence() -> None:
    # Intervals 1, 1, 60: median 1, deviations 0, 0, 59: MAD 0, regularity 1. Amounts
    # 100, 10000, 100, 10000: median 5050, MAD 4950: regularity 1 - 4950/5050 = 2/101.
    observed = [
        (day("2026-01-01"), 100),
        (day("2026-01-02"), 10_000),
        (day("2026-01-03"), 100),
        (day("2026-03-04"), 10_000),
    ]
    result = forecast(observed)
    assert result.confidence == round(2 / 101, 4)
    assert (result.next_date, result.next_amount_minor) == (day("2026-03-05"), 5_050)
    # Intervals 31, 28: median 29.5 (rounded 30), MAD 1.5: 56/59. Amounts 1, 5, 9: median
    # 5, MAD 4: 1/5. Together 56/295 = 0.18983.
    spread = [(day("2026-01-01"), 1), (day("2026-02-01"), 5), (day("2026-03-01"), 9)]
    assert forecast(spread) == Forecast(
        next_date=day("2026-03-31"),
        next_amount_minor=5,
        interval_days=30,
        confidence=0.1898,
        observations=3,
    )


def test_fewer_than_three_days_give_no_forecast() -> None:
    two_days = [(day("2026-01-01"), 500), (day("2026-02-01"), 500), (day("2026-02-01"), 1)]
    assert forecast(two_days) == Forecast(
        next_date=None, next_amount_minor=None, interval_days=None, confidence=0.0, observations=2
    )
    assert forecast([]).observations == 0


series = st.lists(
    st.tuples(
        st.dates(min_value=datetime.date(2000, 1, 1), max_value=datetime.date(2100, 1, 1)),
        st.integers(min_value=1, max_value=10**12),
    ),
    max_size=40,
)


@given(observed=series)
def test_confidence_is_always_between_zero_and_one(
    observed: list[tuple[datetime.date, int]],
) -> None:
    result = forecast(observed)
    assert 0.0 <= result.confidence <= 1.0
    if result.next_date is None:
        assert result.confidence == 0.0
        assert result.observations < 3
    else:
        assert result.next_amount_minor is not None
        assert result.next_amount_minor > 0
        assert result.interval_days is not None
        assert result.interval_days > 0


@given(
    start=st.dates(min_value=datetime.date(2000, 1, 1), max_value=datetime.date(2090, 1, 1)),
    interval=st.integers(min_value=1, max_value=90),
    amount=st.integers(min_value=1, max_value=10**12),
    count=st.integers(min_value=3, max_value=40),
)
def test_a_perfectly_regular_series_is_forecast_exactly_with_confidence_one(
    start: datetime.date, interval: int, amount: int, count: int
) -> None:
    days = [start + datetime.timedelta(days=interval * n) for n in range(count)]
    result = forecast([(d, amount) for d in reversed(days)])
    assert result == Forecast(
        next_date=days[-1] + datetime.timedelta(days=interval),
        next_amount_minor=amount,
        interval_days=interval,
        confidence=1.0,
        observations=count,
    )
