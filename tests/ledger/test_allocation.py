"""Largest-remainder allocation: shares always add up to the total, each share is within
one minor unit of its exact proportion, and equal weights get shares at most one apart."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from ledger.allocation import allocate

weights_strategy = st.lists(st.integers(min_value=0, max_value=10**18), min_size=1, max_size=60)


@given(total=st.integers(min_value=0, max_value=10**18), weights=weights_strategy)
def test_shares_add_up_and_stay_within_one_unit(total: int, weights: list[int]) -> None:
    if sum(weights) == 0:
        weights = [*weights[:-1], 1]
    shares = allocate(total, weights)
    assert sum(shares) == total
    for share, weight in zip(shares, weights, strict=True):
        exact = Fraction(total * weight, sum(weights))
        assert exact - 1 < share < exact + 1
        assert share >= 0


@given(total=st.integers(min_value=0, max_value=10**6), count=st.integers(1, 50))
def test_equal_weights_get_shares_at_most_one_apart(total: int, count: int) -> None:
    shares = allocate(total, [7] * count)
    assert max(shares) - min(shares) <= 1
    assert sum(shares) == total


def test_leftover_units_go_to_the_largest_remainders() -> None:
    assert allocate(10, [1, 1, 1]) == [4, 3, 3]
    assert allocate(100, [1, 2]) == [33, 67]
    assert allocate(0, [5, 5]) == [0, 0]
