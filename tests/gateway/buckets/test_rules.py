"""The rules function `gateway.buckets.rules.evaluate`, alone: each kind asks for what it
should (a percentage of the collected amount rounded down, a fixed amount, the part above a
threshold, the rest), each condition holds it back as it should (minimum left, a cap per
day, week or month given what the rule allocated there, days of the month, an active
window), rules apply in priority order; and, over random rules and amounts, the allocations
and `unallocated` add up to the amount, none is negative or above the amount, percentages
round down, a remainder leaves nothing, caps hold, and the answer depends on the rules, not
on the order they are given in."""

from __future__ import annotations

import datetime
import uuid

import hypothesis.strategies as st
from hypothesis import given, settings

from gateway.buckets.rules import (
    Conditions,
    Evaluation,
    PeriodCap,
    PeriodTotals,
    Rule,
    RuleAllocation,
    evaluate,
    ordered,
    period_end,
    period_start,
    wanted,
)

at = datetime.datetime(2026, 4, 15, 10, 30, tzinfo=datetime.UTC)  # A Wednesday.
created = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def _rule(kind: str, *, priority: int = 100, **fields: object) -> Rule:
    conditions = fields.pop("conditions", Conditions())
    return Rule(
        id=uuid.uuid4(),
        bucket_id=uuid.uuid4(),
        kind=kind,  # type: ignore[arg-type]
        priority=priority,
        created_at=created,
        conditions=conditions,  # type: ignore[arg-type]
        **fields,  # type: ignore[arg-type]
    )


def _amounts(evaluation: Evaluation) -> list[int]:
    return [allocation.amount_minor for allocation in evaluation.allocations]


def _split(amount: int, *rules: Rule, **totals: PeriodTotals) -> Evaluation:
    by_rule = {
        rule.id: totals[f"r{index}"] for index, rule in enumerate(rules) if f"r{index}" in totals
    }
    return evaluate(amount, rules, at=at, allocated_in_period=by_rule)


def test_a_percentage_is_of_the_collected_amount_rounded_down() -> None:
    first = _rule("percentage", priority=1, percent_bps=5_000)
    second = _rule("percentage", priority=2, percent_bps=3_333)
    evaluation = _split(1_001, first, second)
    # 50% of 1001 is 500.5 → 500; 33.33% of 1001 (not of what is left) is 333.6333 → 333.
    assert _amounts(evaluation) == [500, 333]
    assert evaluation.unallocated_minor == 168


def test_a_fixed_amount_is_capped_by_what_is_left() -> None:
    evaluation = _split(
        1_000,
        _rule("fixed", priority=1, amount_minor=700),
        _rule("fixed", priority=2, amount_minor=700),
    )
    assert _amounts(evaluation) == [700, 300]
    assert evaluation.unallocated_minor == 0


def test_a_threshold_takes_the_part_above_it() -> None:
    rule = _rule("threshold", above_minor=2_000)
    assert _amounts(_split(2_500, rule)) == [500]
    assert _split(2_000, rule) == Evaluation(allocations=(), unallocated_minor=2_000)
    assert _split(1_000, rule).allocations == ()


def test_a_remainder_takes_the_rest_and_leaves_nothing_for_a_later_one() -> None:
    fixed = _rule("fixed", priority=1, amount_minor=300)
    rest = _rule("remainder", priority=2)
    late = _rule("remainder", priority=3)
    evaluation = _split(1_000, fixed, rest, late)
    assert evaluation.allocations == (
        RuleAllocation(rule_id=fixed.id, bucket_id=fixed.bucket_id, amount_minor=300),
        RuleAllocation(rule_id=rest.id, bucket_id=rest.bucket_id, amount_minor=700),
    )
    assert evaluation.unallocated_minor == 0


def test_minimum_left_keeps_money_for_the_customer() -> None:
    keep = Conditions(minimum_left_minor=400)
    assert _amounts(_split(1_000, _rule("remainder", conditions=keep))) == [600]
    assert _amounts(_split(1_000, _rule("fixed", amount_minor=500, conditions=keep))) == [500]
    assert _amounts(_split(1_000, _rule("fixed", amount_minor=700, conditions=keep))) == [600]
    assert _split(300, _rule("remainder", conditions=keep)).unallocated_minor == 300


def test_a_cap_per_period_counts_what_the_rule_allocated_in_that_period() -> None:
    monthly = Conditions(maximum_per_period=PeriodCap(amount_minor=1_000, period="month"))
    rule = _rule("remainder", conditions=monthly)
    assert _amounts(_split(5_000, rule)) == [1_000]
    assert _amounts(_split(5_000, rule, r0=PeriodTotals(month_minor=750))) == [250]
    assert _split(5_000, rule, r0=PeriodTotals(month_minor=1_000)).allocations == ()
    # Only the rule's own period counts: a day's total says nothing of a weekly cap.
    weekly = _rule(
        "remainder",
        conditions=Conditions(maximum_per_period=PeriodCap(amount_minor=100, period="week")),
    )
    assert _amounts(_split(5_000, weekly, r0=PeriodTotals(day_minor=100, week_minor=60))) == [40]


def test_days_of_the_month_and_the_active_window_decide_whether_a_rule_applies() -> None:
    on_the_15th = _rule("remainder", conditions=Conditions(days_of_month=(1, 15)))
    on_the_16th = _rule("remainder", conditions=Conditions(days_of_month=(16,)))
    assert _amounts(_split(100, on_the_15th)) == [100]
    assert _split(100, on_the_16th).allocations == ()
    # The 31st in a month of 30 days is its last day.
    last = Conditions(days_of_month=(31,))
    april_30 = datetime.datetime(2026, 4, 30, 23, 59, tzinfo=datetime.UTC)
    assert evaluate(
        100, [_rule("remainder", conditions=last)], at=april_30, allocated_in_period={}
    ).allocations
    window = Conditions(active_from=at, active_until=at + datetime.timedelta(days=1))
    assert _amounts(_split(100, _rule("remainder", conditions=window))) == [100]  # From: inclusive.
    ended = Conditions(active_until=at)  # Until: exclusive.
    assert _split(100, _rule("remainder", conditions=ended)).allocations == ()
    later = Conditions(active_from=at + datetime.timedelta(seconds=1))
    assert _split(100, _rule("remainder", conditions=later)).allocations == ()


def test_rules_apply_by_priority_then_creation() -> None:
    low = _rule("fixed", priority=5, amount_minor=600)
    high = _rule("fixed", priority=1, amount_minor=600)
    evaluation = _split(1_000, low, high)
    assert evaluation.allocations == (
        RuleAllocation(rule_id=high.id, bucket_id=high.bucket_id, amount_minor=600),
        RuleAllocation(rule_id=low.id, bucket_id=low.bucket_id, amount_minor=400),
    )
    older = Rule(
        id=uuid.uuid4(), bucket_id=uuid.uuid4(), kind="remainder", priority=1, created_at=created
    )
    newer = Rule(
        id=uuid.uuid4(),
        bucket_id=uuid.uuid4(),
        kind="remainder",
        priority=1,
        created_at=created + datetime.timedelta(seconds=1),
    )
    assert ordered([newer, older]) == [older, newer]


def test_periods_are_utc_days_iso_weeks_and_months() -> None:
    assert period_start("day", at) == datetime.datetime(2026, 4, 15, tzinfo=datetime.UTC)
    assert period_start("week", at) == datetime.datetime(2026, 4, 13, tzinfo=datetime.UTC)
    assert period_start("month", at) == datetime.datetime(2026, 4, 1, tzinfo=datetime.UTC)
    assert period_end("week", at) == datetime.datetime(2026, 4, 20, tzinfo=datetime.UTC)
    december = datetime.datetime(2026, 12, 31, 23, tzinfo=datetime.UTC)
    assert period_end("month", december) == datetime.datetime(2027, 1, 1, tzinfo=datetime.UTC)


# ------------------------------------------------------------------------------------------
# Properties over random rules and amounts.

amounts = st.integers(min_value=0, max_value=10**12)
optional_amount = st.none() | st.integers(min_value=0, max_value=10**9)


@st.composite
def conditions(draw: st.DrawFn) -> Conditions:
    cap = draw(
        st.none()
        | st.builds(
            PeriodCap,
            amount_minor=st.integers(min_value=1, max_value=10**9),
            period=st.sampled_from(["day", "week", "month"]),
        )
    )
    start = draw(st.none() | st.integers(min_value=-3, max_value=3))
    return Conditions(
        minimum_left_minor=draw(optional_amount),
        maximum_per_period=cap,
        days_of_month=draw(
            st.none() | st.lists(st.integers(1, 31), min_size=1, max_size=5).map(tuple)
        ),
        active_from=None if start is None else at + datetime.timedelta(days=start),
        active_until=None if start is None else at + datetime.timedelta(days=start + 2),
    )


@st.composite
def rules(draw: st.DrawFn) -> Rule:
    kind = draw(st.sampled_from(["percentage", "fixed", "threshold", "remainder"]))
    return Rule(
        id=uuid.UUID(int=draw(st.integers(min_value=1, max_value=2**128 - 1))),
        bucket_id=uuid.uuid4(),
        kind=kind,
        priority=draw(st.integers(min_value=0, max_value=5)),
        created_at=created + datetime.timedelta(seconds=draw(st.integers(0, 3))),
        percent_bps=draw(st.integers(1, 10_000)) if kind == "percentage" else None,
        amount_minor=draw(st.integers(1, 10**9)) if kind == "fixed" else None,
        above_minor=draw(st.integers(0, 10**9)) if kind == "threshold" else None,
        conditions=draw(conditions()),
    )


totals = st.builds(
    PeriodTotals,
    day_minor=st.integers(0, 10**9),
    week_minor=st.integers(0, 10**9),
    month_minor=st.integers(0, 10**9),
)


@st.composite
def cases(draw: st.DrawFn) -> tuple[int, list[Rule], dict[uuid.UUID, PeriodTotals]]:
    drawn = draw(st.lists(rules(), max_size=8, unique_by=lambda rule: rule.id))
    known = {rule.id: draw(totals) for rule in drawn if draw(st.booleans())}
    return draw(amounts), drawn, known


@settings(max_examples=150)
@given(case=cases())
def test_allocations_add_up_and_stay_within_the_amount(
    case: tuple[int, list[Rule], dict[uuid.UUID, PeriodTotals]],
) -> None:
    amount, drawn, known = case
    evaluation = evaluate(amount, drawn, at=at, allocated_in_period=known)
    shares = _amounts(evaluation)
    assert sum(shares) + evaluation.unallocated_minor == amount
    assert evaluation.unallocated_minor >= 0
    assert all(0 < share <= amount for share in shares)
    by_id = {rule.id: rule for rule in drawn}
    for allocation in evaluation.allocations:
        rule = by_id[allocation.rule_id]
        assert allocation.bucket_id == rule.bucket_id
        assert allocation.amount_minor <= wanted(amount, amount, rule)
        cap = rule.conditions.maximum_per_period
        if cap is not None:
            already = known.get(rule.id, PeriodTotals()).of(cap.period)
            assert already + allocation.amount_minor <= max(cap.amount_minor, already)


@settings(max_examples=100)
@given(case=cases(), seed=st.randoms(use_true_random=False))
def test_the_answer_is_deterministic_and_follows_priority(
    case: tuple[int, list[Rule], dict[uuid.UUID, PeriodTotals]], seed: st.SearchStrategy
) -> None:
    amount, drawn, known = case
    evaluation = evaluate(amount, drawn, at=at, allocated_in_period=known)
    shuffled = list(drawn)
    seed.shuffle(shuffled)  # type: ignore[attr-defined]
    assert evaluate(amount, shuffled, at=at, allocated_in_period=known) == evaluation
    order = {rule.id: index for index, rule in enumerate(ordered(drawn))}
    positions = [order[allocation.rule_id] for allocation in evaluation.allocations]
    assert positions == sorted(positions)


@given(amount=amounts, bps=st.integers(1, 10_000))
def test_a_lone_percentage_rounds_down(amount: int, bps: int) -> None:
    evaluation = evaluate(
        amount, [_rule("percentage", percent_bps=bps)], at=at, allocated_in_period={}
    )
    assert sum(_amounts(evaluation)) == amount * bps // 10_000
    assert sum(_amounts(evaluation)) * 10_000 <= amount * bps


@given(amount=amounts, before=st.lists(rules(), max_size=5))
def test_an_unconditional_remainder_leaves_nothing_unallocated(
    amount: int, before: list[Rule]
) -> None:
    rest = Rule(
        id=uuid.uuid4(), bucket_id=uuid.uuid4(), kind="remainder", priority=99, created_at=created
    )
    assert evaluate(amount, [*before, rest], at=at, allocated_in_period={}).unallocated_minor == 0
