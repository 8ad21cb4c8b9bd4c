"""Pricing rounds in the platform's favour at each currency's minor units: a source amount
never buys more than its exact conversion, a target amount never costs less, fees round up,
the customer rate is the mid rate less the margin, never rounded up, and a USD equivalent
rounds up to at least one cent."""

from __future__ import annotations

import datetime
from decimal import Decimal

import hypothesis.strategies as st
import pytest
from hypothesis import given

from fx.pricing import Pricing, customer_rate, price, usd_equivalent_minor
from ledger.currencies import CurrencyRegistry
from ledger.errors import InvalidAmount

registry = CurrencyRegistry(["EUR", "IDR", "GBP", "USD", "JPY", "KWD"])
now = datetime.datetime(2026, 11, 21, tzinfo=datetime.UTC)
codes = st.sampled_from(["EUR", "IDR", "GBP", "USD", "JPY", "KWD"])
mids = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("20000"), places=6)
margins = st.integers(min_value=0, max_value=500)


def _exact(amount_minor: int, from_units: int, rate: Decimal, to_units: int) -> Decimal:
    return Decimal(amount_minor).scaleb(-from_units) * rate * Decimal(1).scaleb(to_units)


@given(
    source=codes,
    target=codes,
    mid=mids,
    margin=margins,
    amount=st.integers(min_value=1, max_value=10**12),
)
def test_a_source_amount_never_buys_more_than_it_should(
    source: str, target: str, mid: Decimal, margin: int, amount: int
) -> None:
    s, t = registry.get(source), registry.get(target)
    try:
        terms = price(
            source=s,
            target=t,
            mid=mid,
            mid_observed_at=now,
            pricing=Pricing(margin_bps=margin),
            usd_to_source_mid=Decimal(1),
            source_amount=amount,
        )
    except InvalidAmount:
        return  # Too small to buy one minor unit of the target: refused, not rounded up.
    exact = _exact(amount, s.minor_units, terms.rate, t.minor_units)
    assert terms.source_amount == amount
    assert terms.target_amount <= exact < terms.target_amount + 1
    if source != target:
        assert terms.rate <= mid * (10_000 - margin) / 10_000


@given(
    source=codes,
    target=codes,
    mid=mids,
    margin=margins,
    amount=st.integers(min_value=1, max_value=10**12),
)
def test_a_target_amount_never_costs_less_than_it_should(
    source: str, target: str, mid: Decimal, margin: int, amount: int
) -> None:
    s, t = registry.get(source), registry.get(target)
    try:
        terms = price(
            source=s,
            target=t,
            mid=mid,
            mid_observed_at=now,
            pricing=Pricing(margin_bps=margin),
            usd_to_source_mid=Decimal(1),
            target_amount=amount,
        )
    except InvalidAmount:
        return
    assert terms.target_amount == amount
    # What the charged source amount buys covers the target, and one unit less would not.
    bought = _exact(terms.source_amount, s.minor_units, terms.rate, t.minor_units)
    assert bought >= amount
    assert _exact(terms.source_amount - 1, s.minor_units, terms.rate, t.minor_units) < amount


def test_a_worked_example() -> None:
    terms = price(
        source=registry.get("EUR"),
        target=registry.get("IDR"),
        mid=Decimal("17663.0434782609"),
        mid_observed_at=now,
        pricing=Pricing(margin_bps=150, fee_bps=10, fee_fixed_usd_minor=50),
        usd_to_source_mid=Decimal("0.92"),
        source_amount=100_000,
    )
    assert terms.rate == Decimal("17398.0978260869")  # 17663.04... times 0.985, cut to 10 places.
    assert terms.target_amount == 1_739_809_782  # 1,000.00 EUR → 17,398,097.82 IDR, floored.
    # Fee: 10 bps of 100,000 = 100 cents, plus USD 0.50 at 0.92 = EUR 0.46: 146 cents.
    assert terms.fee_amount == 146
    assert terms.margin_bps == 150


def test_same_currency_has_no_margin_or_conversion() -> None:
    eur = registry.get("EUR")
    terms = price(
        source=eur,
        target=eur,
        mid=Decimal(1),
        mid_observed_at=now,
        pricing=Pricing(margin_bps=150, fee_bps=25),
        usd_to_source_mid=Decimal("0.92"),
        target_amount=10_001,
    )
    assert (terms.source_amount, terms.target_amount, terms.margin_bps) == (10_001, 10_001, 0)
    assert terms.fee_amount == 26  # 25 bps of 10,001 = 25.0025 → rounded up.


def test_amounts_too_small_or_ambiguous_are_refused() -> None:
    with pytest.raises(InvalidAmount, match="too small"):
        price(
            source=registry.get("IDR"),
            target=registry.get("KWD"),
            mid=Decimal("0.000019"),
            mid_observed_at=now,
            pricing=Pricing(margin_bps=0),
            usd_to_source_mid=Decimal(1),
            source_amount=1,
        )
    with pytest.raises(InvalidAmount, match="exactly one"):
        price(
            source=registry.get("EUR"),
            target=registry.get("USD"),
            mid=Decimal(1),
            mid_observed_at=now,
            pricing=Pricing(margin_bps=0),
            usd_to_source_mid=Decimal(1),
            source_amount=1,
            target_amount=1,
        )


def test_customer_rate_is_cut_not_rounded() -> None:
    assert customer_rate(Decimal("1.23456789019"), 0) == Decimal("1.2345678901")
    with pytest.raises(ValueError, match="margin_bps"):
        customer_rate(Decimal(1), 10_000)


def test_usd_equivalent_rounds_up_to_at_least_one_cent() -> None:
    idr, eur = registry.get("IDR"), registry.get("EUR")
    # 1,001.46 EUR at 1.0869565217 USD per EUR is 1,088.54347... USD: 108,855 cents.
    rate = Decimal("1.0869565217")
    assert usd_equivalent_minor(amount_minor=100_146, currency=eur, to_usd_mid=rate) == 108_855
    assert usd_equivalent_minor(amount_minor=1, currency=idr, to_usd_mid=Decimal("0.00006")) == 1
    exact = usd_equivalent_minor(amount_minor=2_000, currency=eur, to_usd_mid=Decimal("1.5"))
    assert exact == 3_000


@given(amount=st.integers(min_value=1, max_value=10**15), rate=mids)
def test_usd_equivalent_is_never_below_the_exact_value(amount: int, rate: Decimal) -> None:
    for code in ("EUR", "IDR", "KWD"):
        currency = registry.get(code)
        counted = usd_equivalent_minor(amount_minor=amount, currency=currency, to_usd_mid=rate)
        exact = _exact(amount, currency.minor_units, rate, 2)
        assert counted >= exact
        assert counted < max(exact + 1, Decimal(2))
