"""Pricing rounds in the platform's favour at each currency's minor units, exactly as
`fx.pricing` documents it, checked against an oracle in exact rational arithmetic
(`fractions.Fraction`) over currencies with 0, 2, 3 and 4 decimals, realistic rates between
them, real margins, percentage fees and fixed fees set in US cents: the customer rate is the
mid rate less the margin, cut to ten places; a given source amount buys the target floored, a
given target amount costs the source ceiled; the fee is the percentage share ceiled plus the
fixed fee converted at the USD rate and ceiled; a quote is refused exactly when an amount
comes out below one minor unit or above the ledger's bound; a USD equivalent rounds up to at
least one cent."""

from __future__ import annotations

import datetime
import math
from decimal import Decimal
from fractions import Fraction

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from fx.pricing import Pricing, QuoteTerms, customer_rate, price, usd_equivalent_minor
from ledger.currencies import CurrencyRegistry
from ledger.errors import InvalidAmount
from ledger.service import amount_minor_max
from tests.fx.markets import (
    codes,
    drift_per_mille,
    mid_rate,
    minor_scale,
    near_whole_unit,
    pairs_with_rates,
)
from tests.fx.markets import registry as markets_registry

registry = CurrencyRegistry(["EUR", "IDR", "GBP", "USD", "JPY", "KWD"])
now = datetime.datetime(2026, 11, 21, tzinfo=datetime.UTC)
pricings = st.builds(
    Pricing,
    margin_bps=st.integers(min_value=0, max_value=2_000),
    fee_bps=st.integers(min_value=0, max_value=500),
    fee_fixed_usd_minor=st.integers(min_value=0, max_value=10_000),
)
# Every size from one minor unit to past the ledger's bound, so refusals are exercised too.
amounts = st.integers(min_value=1, max_value=10 * amount_minor_max)
basis_points = 10_000
rate_scale = 10**10
# Pure arithmetic is cheap: enough examples that the amounts at the ledger's bound, where a
# product outgrows 28 significant digits, come up in every run.
examples_exact = 500


def boundary_amounts(per_unit: Fraction) -> st.SearchStrategy[int]:
    """Amounts whose exact conversion at `per_unit` lies just off a whole minor unit."""
    if per_unit <= 0:
        return amounts
    return st.composite(
        lambda draw: near_whole_unit(draw, per_unit=per_unit, bound=amount_minor_max)
    )()


class Expected:
    """What the documented rounding gives, computed with exact fractions."""

    def __init__(self, *, source: str, target: str, mid: Decimal, pricing: Pricing) -> None:
        self.source, self.target = source, target
        self.margin_bps = 0 if source == target else pricing.margin_bps
        if source == target:
            self.rate = Fraction(1)
        else:
            gross = Fraction(mid) * (basis_points - self.margin_bps) / basis_points
            self.rate = Fraction(math.floor(gross * rate_scale), rate_scale)
        self.pricing = pricing
        # Minor units of the target per minor unit of the source.
        self.per_source_minor = self.rate * minor_scale(target) / minor_scale(source)

    def target_for(self, source_amount: int) -> int:
        return math.floor(source_amount * self.per_source_minor)

    def source_for(self, target_amount: int) -> int:
        return math.ceil(target_amount / self.per_source_minor)

    def fee(self, source_amount: int, usd_to_source: Decimal) -> int:
        share = math.ceil(Fraction(source_amount * self.pricing.fee_bps, basis_points))
        fixed_usd = Fraction(self.pricing.fee_fixed_usd_minor, 100)
        fixed = math.ceil(fixed_usd * Fraction(usd_to_source) * minor_scale(self.source))
        return share + fixed


def _quote(
    source: str,
    target: str,
    mid: Decimal,
    pricing: Pricing,
    usd_to_source: Decimal,
    **amount: int,
) -> QuoteTerms | None:
    try:
        return price(
            source=markets_registry.get(source),
            target=markets_registry.get(target),
            mid=mid,
            mid_observed_at=now,
            pricing=pricing,
            usd_to_source_mid=usd_to_source,
            **amount,
        )
    except InvalidAmount:
        return None


def _refused(source_amount: int, target_amount: int) -> bool:
    return min(source_amount, target_amount) < 1 or max(source_amount, target_amount) > (
        amount_minor_max
    )


@settings(max_examples=examples_exact)
@given(
    pair=pairs_with_rates(),
    pricing=pricings,
    usd_drift=drift_per_mille,
    data=st.data(),
)
def test_a_given_source_amount_buys_exactly_the_floored_conversion(
    pair: tuple[str, str, Decimal], pricing: Pricing, usd_drift: int, data: st.DataObject
) -> None:
    source, target, mid = pair
    usd_to_source = mid_rate("USD", source, usd_drift)
    expected = Expected(source=source, target=target, mid=mid, pricing=pricing)
    amount = data.draw(amounts | boundary_amounts(expected.per_source_minor), label="amount")
    terms = _quote(source, target, mid, pricing, usd_to_source, source_amount=amount)
    target_amount = expected.target_for(amount)
    if _refused(amount, target_amount):
        assert terms is None, f"{amount} {source} should be refused"
        return
    assert terms is not None
    assert (terms.source_amount, terms.target_amount) == (amount, target_amount)
    assert Fraction(terms.rate) == expected.rate
    assert terms.margin_bps == expected.margin_bps
    assert terms.fee_amount == expected.fee(amount, usd_to_source)
    # In the platform's favour: never more than the exact conversion at the mid rate.
    assert terms.target_amount <= amount * Fraction(mid) * minor_scale(target) / minor_scale(source)


@settings(max_examples=examples_exact)
@given(
    pair=pairs_with_rates(),
    pricing=pricings,
    usd_drift=drift_per_mille,
    data=st.data(),
)
def test_a_given_target_amount_costs_exactly_the_ceiled_conversion(
    pair: tuple[str, str, Decimal], pricing: Pricing, usd_drift: int, data: st.DataObject
) -> None:
    source, target, mid = pair
    usd_to_source = mid_rate("USD", source, usd_drift)
    expected = Expected(source=source, target=target, mid=mid, pricing=pricing)
    per_target_minor = 1 / expected.per_source_minor if expected.rate else Fraction(0)
    amount = data.draw(amounts | boundary_amounts(per_target_minor), label="amount")
    terms = _quote(source, target, mid, pricing, usd_to_source, target_amount=amount)
    source_amount = expected.source_for(amount)
    if _refused(source_amount, amount):
        assert terms is None, f"{amount} {target} should be refused"
        return
    assert terms is not None
    assert (terms.source_amount, terms.target_amount) == (source_amount, amount)
    assert Fraction(terms.rate) == expected.rate
    assert terms.fee_amount == expected.fee(source_amount, usd_to_source)
    # One minor unit less of the source would not buy the target.
    assert expected.target_for(source_amount - 1) < amount <= expected.target_for(source_amount)


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


def test_amounts_past_28_significant_digits_are_rounded_once_exactly() -> None:
    """At the ledger's largest amounts a product or quotient has more digits than decimal
    arithmetic keeps by default; rounding it there first would carry it across a minor unit."""
    eur, bhd, jpy = (markets_registry.get(code) for code in ("EUR", "BHD", "JPY"))
    # 5,000,008,773,220,747.89 EUR at 160.1234567891 is 800,618,688,743,933,325.99... yen.
    bought = price(
        source=eur,
        target=jpy,
        mid=Decimal("160.1234567891"),
        mid_observed_at=now,
        pricing=Pricing(margin_bps=0),
        usd_to_source_mid=Decimal(1),
        source_amount=500_000_877_322_074_789,
    )
    assert bought.target_amount == 800_618_688_743_933_325
    # 99,997,871,358,654,190 yen at 252.7388059701 yen per dinar cost a hair over
    # 395,656,974,696,969.699 dinars: the next fils up.
    cost = price(
        source=bhd,
        target=jpy,
        mid=Decimal("252.7388059701"),
        mid_observed_at=now,
        pricing=Pricing(margin_bps=0),
        usd_to_source_mid=Decimal(1),
        target_amount=99_997_871_358_654_190,
    )
    assert cost.source_amount == 395_656_974_696_969_700


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


@given(
    code=codes,
    amount=st.integers(min_value=1, max_value=amount_minor_max),
    drift=drift_per_mille,
)
def test_usd_equivalent_is_the_exact_value_rounded_up_to_a_cent(
    code: str, amount: int, drift: int
) -> None:
    to_usd = mid_rate(code, "USD", drift)
    counted = usd_equivalent_minor(
        amount_minor=amount, currency=markets_registry.get(code), to_usd_mid=to_usd
    )
    exact_cents = amount * Fraction(to_usd) * 100 / minor_scale(code)
    assert counted == max(1, math.ceil(exact_cents))
