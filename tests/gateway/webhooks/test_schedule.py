"""The retry schedule: parsed strictly with the variable's problem named, each retry spread
by at most ±20% around its scheduled delay, and no retry after the last one."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.webhooks.schedule import (
    jitter_fraction,
    parse_schedule,
    retries_max,
    retry_delay_seconds,
    retry_schedule_default,
)


def test_the_default_spans_about_a_day() -> None:
    total_seconds = sum(retry_schedule_default)
    assert 18 * 3600 <= total_seconds <= 30 * 3600
    assert list(retry_schedule_default) == sorted(retry_schedule_default)


def test_a_schedule_parses_from_comma_separated_seconds() -> None:
    assert parse_schedule("5, 30,0.5") == (5.0, 30.0, 0.5)


@pytest.mark.parametrize(
    "text",
    ["", "5,,30", "5,abc", "-1", "700000", ",".join(["1"] * (retries_max + 1))],
)
def test_a_bad_schedule_is_refused_with_a_reason(text: str) -> None:
    with pytest.raises(ValueError, match=r"\S"):
        parse_schedule(text)


@given(
    schedule=st.lists(st.floats(min_value=0, max_value=86_400), min_size=1, max_size=20),
    random_value=st.floats(min_value=0, max_value=1, exclude_max=True),
    data=st.data(),
)
def test_each_retry_waits_its_delay_within_the_jitter(
    schedule: list[float], random_value: float, data: st.DataObject
) -> None:
    failed = data.draw(st.integers(min_value=1, max_value=len(schedule)))
    delay = retry_delay_seconds(tuple(schedule), failed_attempt=failed, random=lambda: random_value)
    assert delay is not None
    base = schedule[failed - 1]
    assert base * (1 - jitter_fraction) - 1e-9 <= delay <= base * (1 + jitter_fraction) + 1e-9


def test_there_is_no_retry_after_the_last() -> None:
    assert retry_delay_seconds((1.0, 2.0), failed_attempt=3) is None
    with pytest.raises(ValueError, match="count from 1"):
        retry_delay_seconds((1.0,), failed_attempt=0)
