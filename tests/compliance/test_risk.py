"""The risk score moves with each factor in the documented direction and stays within 0..100.

From a baseline payout that scores 0 (no amount, an old recipient, a quiet hour, a zero-point
corridor, an ordinary country), each factor alone adds its documented points and names its
reason: the amount as a share of the tier's daily limit (capped at the whole limit), a new or
young recipient, elevated or high velocity, the corridor and a high-risk country. All factors
together are capped at 100. Hypothesis checks that for any non-negative facts the score stays
within 0..100, that only positive contributions are named, and that a larger amount, more
payouts in the hour, a younger recipient or a high-risk country never lower the score.
"""

from __future__ import annotations

import datetime

import hypothesis.strategies as st
import msgspec
import pytest
from hypothesis import given

from compliance import risk
from compliance.decisions import PayoutFacts
from compliance.risk import risk_score
from ledger.invariants import InvariantViolation

now = datetime.datetime(2026, 3, 10, 12, 0, tzinfo=datetime.UTC)
daily_limit = 1_000_000
all_reasons = frozenset(
    {
        "amount_for_tier",
        "new_recipient",
        "young_recipient",
        "velocity_high",
        "velocity_elevated",
        "corridor",
        "high_risk_country",
    }
)


def facts(
    *,
    amount: int = 0,
    limit: int = daily_limit,
    target_currency: str = "EUR",
    country: str = "DE",
    recipient_age: datetime.timedelta = datetime.timedelta(days=365),
    payouts_last_hour: int = 0,
) -> PayoutFacts:
    return PayoutFacts(
        tenant_id=7,
        tier="standard",
        source_currency="USD",
        target_currency=target_currency,
        amount_usd_minor=amount,
        daily_limit_usd_minor=limit,
        recipient_name="Jane Example",
        recipient_country=country,
        recipient_created_at=now - recipient_age,
        payouts_last_hour=payouts_last_hour,
    )


def test_the_baseline_payout_scores_nothing() -> None:
    assert risk_score(facts(), now=now) == (0, ())


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        (daily_limit // 4, 10),
        (daily_limit // 2, 20),
        (daily_limit, 40),
        (daily_limit * 3, 40),  # More than the limit scores as the whole limit.
    ],
)
def test_the_amount_scores_its_share_of_the_daily_limit(amount: int, expected: int) -> None:
    assert risk_score(facts(amount=amount), now=now) == (expected, ("amount_for_tier",))


def test_a_larger_share_of_the_limit_scores_more() -> None:
    small, _ = risk_score(facts(amount=daily_limit // 10), now=now)
    large, _ = risk_score(facts(amount=daily_limit // 2), now=now)
    assert 0 < small < large


def test_the_same_amount_scores_more_against_a_lower_tier_limit() -> None:
    generous, _ = risk_score(facts(amount=100_000, limit=10_000_000), now=now)
    strict, _ = risk_score(facts(amount=100_000, limit=200_000), now=now)
    assert generous < strict
    assert strict == 20


def test_no_daily_limit_means_no_amount_points() -> None:
    assert risk_score(facts(amount=5_000_000, limit=0), now=now) == (0, ())


@pytest.mark.parametrize(
    ("currency", "expected"),
    [("EUR", 0), ("GBP", 0), ("IDR", 5), ("NGN", 10), ("USD", 10)],
)
def test_the_corridor_scores_its_points(currency: str, expected: int) -> None:
    score, reasons = risk_score(facts(target_currency=currency), now=now)
    assert score == expected
    assert reasons == (("corridor",) if expected else ())


@pytest.mark.parametrize(
    ("age", "expected", "reasons"),
    [
        (datetime.timedelta(minutes=5), 15, ("new_recipient",)),
        (datetime.timedelta(hours=23, minutes=59), 15, ("new_recipient",)),
        (datetime.timedelta(hours=24), 5, ("young_recipient",)),
        (datetime.timedelta(days=6, hours=23), 5, ("young_recipient",)),
        (datetime.timedelta(days=7), 0, ()),
        (datetime.timedelta(days=400), 0, ()),
    ],
)
def test_a_younger_recipient_scores_more(
    age: datetime.timedelta, expected: int, reasons: tuple[str, ...]
) -> None:
    assert risk_score(facts(recipient_age=age), now=now) == (expected, reasons)


def test_a_recipient_created_just_now_is_new_by_the_default_clock() -> None:
    just_created = PayoutFacts(
        tenant_id=7,
        tier="standard",
        source_currency="USD",
        target_currency="EUR",
        amount_usd_minor=0,
        daily_limit_usd_minor=daily_limit,
        recipient_name="Jane Example",
        recipient_country="DE",
        recipient_created_at=datetime.datetime.now(tz=datetime.UTC),
        payouts_last_hour=0,
    )
    assert risk_score(just_created) == (15, ("new_recipient",))


@pytest.mark.parametrize(
    ("payouts", "expected", "reasons"),
    [
        (0, 0, ()),
        (20, 0, ()),
        (21, 10, ("velocity_elevated",)),
        (50, 10, ("velocity_elevated",)),
        (51, 25, ("velocity_high",)),
        (5_000, 25, ("velocity_high",)),
    ],
)
def test_more_payouts_in_the_hour_score_more(
    payouts: int, expected: int, reasons: tuple[str, ...]
) -> None:
    assert risk_score(facts(payouts_last_hour=payouts), now=now) == (expected, reasons)


@pytest.mark.parametrize("country", sorted(risk.high_risk_countries))
def test_a_high_risk_country_scores_60(country: str) -> None:
    assert risk_score(facts(country=country), now=now) == (60, ("high_risk_country",))


@pytest.mark.parametrize("country", ["DE", "GB", "ID", "US", "SG"])
def test_an_ordinary_country_scores_nothing(country: str) -> None:
    assert risk_score(facts(country=country), now=now) == (0, ())


def test_factors_add_up_and_name_each_reason_in_order() -> None:
    score, reasons = risk_score(
        facts(
            amount=daily_limit // 2,
            target_currency="IDR",
            recipient_age=datetime.timedelta(days=2),
            payouts_last_hour=30,
        ),
        now=now,
    )
    assert score == 20 + 5 + 10 + 5
    assert reasons == ("amount_for_tier", "young_recipient", "velocity_elevated", "corridor")


def test_every_factor_at_once_is_capped_at_100() -> None:
    score, reasons = risk_score(
        facts(
            amount=daily_limit,
            target_currency="NGN",
            country="KP",
            recipient_age=datetime.timedelta(minutes=1),
            payouts_last_hour=500,
        ),
        now=now,
    )
    assert score == 100
    assert set(reasons) == {
        "amount_for_tier",
        "new_recipient",
        "velocity_high",
        "corridor",
        "high_risk_country",
    }


currencies = st.sampled_from(["EUR", "GBP", "IDR", "USD", "NGN", "PHP"])
countries = st.sampled_from(["DE", "GB", "ID", "US", "IR", "KP", "RU", "CU"])
ages = st.timedeltas(min_value=datetime.timedelta(hours=-1), max_value=datetime.timedelta(days=60))
amounts = st.integers(min_value=0, max_value=10**13)
limits = st.integers(min_value=0, max_value=10**12)
velocities = st.integers(min_value=0, max_value=1_000)


@st.composite
def any_facts(draw: st.DrawFn) -> PayoutFacts:
    return facts(
        amount=draw(amounts),
        limit=draw(limits),
        target_currency=draw(currencies),
        country=draw(countries),
        recipient_age=draw(ages),
        payouts_last_hour=draw(velocities),
    )


@given(any_facts())
def test_the_score_is_bounded_and_names_only_known_reasons(payout: PayoutFacts) -> None:
    score, reasons = risk_score(payout, now=now)
    assert 0 <= score <= 100
    assert len(set(reasons)) == len(reasons)
    assert set(reasons) <= all_reasons
    assert (score == 0) == (reasons == ())


@given(any_facts(), st.integers(min_value=0, max_value=10**12))
def test_a_larger_amount_never_lowers_the_score(payout: PayoutFacts, extra: int) -> None:
    larger = msgspec.structs.replace(payout, amount_usd_minor=payout.amount_usd_minor + extra)
    assert risk_score(larger, now=now)[0] >= risk_score(payout, now=now)[0]


@given(any_facts(), st.integers(min_value=0, max_value=1_000))
def test_more_payouts_in_the_hour_never_lower_the_score(payout: PayoutFacts, extra: int) -> None:
    busier = msgspec.structs.replace(payout, payouts_last_hour=payout.payouts_last_hour + extra)
    assert risk_score(busier, now=now)[0] >= risk_score(payout, now=now)[0]


@given(any_facts(), ages)
def test_an_older_recipient_never_raises_the_score(
    payout: PayoutFacts, extra: datetime.timedelta
) -> None:
    older = msgspec.structs.replace(
        payout, recipient_created_at=payout.recipient_created_at - abs(extra)
    )
    assert risk_score(older, now=now)[0] <= risk_score(payout, now=now)[0]


@given(any_facts(), st.sampled_from(sorted(risk.high_risk_countries)))
def test_a_high_risk_country_raises_the_score_unless_capped(
    payout: PayoutFacts, country: str
) -> None:
    ordinary = msgspec.structs.replace(payout, recipient_country="DE")
    risky = msgspec.structs.replace(payout, recipient_country=country)
    ordinary_score, _ = risk_score(ordinary, now=now)
    risky_score, reasons = risk_score(risky, now=now)
    assert risky_score == min(100, ordinary_score + 60)
    assert "high_risk_country" in reasons


def test_a_negative_amount_is_a_programmer_error() -> None:
    with pytest.raises(InvariantViolation):
        risk_score(facts(amount=-1), now=now)
