"""A customer's allocation rules and the pure function that applies them to an amount.

`evaluate` is the whole of the rules' meaning (SPEC §11), kept apart from storage and HTTP so
that it can be tested exhaustively: integers in minor units only, rules in priority order
(lower first, ties by creation, then id), each rule capped by what is left, so the
allocations never exceed the amount and always add up with `unallocated`.

What each kind asks for, before the caps:

- `percentage`: `percent_bps` of the collected amount (not of what is left), rounded down;
- `fixed`: `amount_minor`;
- `threshold`: the part of the collected amount above `above_minor` (nothing at or below it);
- `remainder`: everything left.

Then, in this order: at most what is left; at most what leaves `minimum_left_minor` to the
customer; at most what the rule's `maximum_per_period` still allows in the period `at` falls
in, given what the rule already allocated there (`allocated_in_period`). A rule outside its
active window (`active_from` inclusive, `active_until` exclusive) or on a day of the month it
does not name allocates nothing. Days and periods are UTC; a day of the month the month does
not have (the 31st in April) means its last day. Zero allocations are omitted.
"""

from __future__ import annotations

import calendar
import datetime
import uuid
from collections.abc import Mapping, Sequence
from typing import Final, Literal

import msgspec

from ledger.invariants import ensure, unreachable

RuleKind = Literal["percentage", "fixed", "threshold", "remainder"]
rule_kinds: tuple[str, ...] = RuleKind.__args__  # type: ignore[attr-defined]
Period = Literal["day", "week", "month"]
periods: tuple[str, ...] = Period.__args__  # type: ignore[attr-defined]
basis_points_whole: Final = 10_000


class PeriodCap(msgspec.Struct, frozen=True, kw_only=True):
    """At most `amount_minor` allocated by the rule per calendar day, ISO week or month."""

    amount_minor: int
    period: Period


class Conditions(msgspec.Struct, frozen=True, kw_only=True):
    minimum_left_minor: int | None = None
    maximum_per_period: PeriodCap | None = None
    days_of_month: tuple[int, ...] | None = None
    active_from: datetime.datetime | None = None
    active_until: datetime.datetime | None = None


class Rule(msgspec.Struct, frozen=True, kw_only=True):
    """One live rule, as stored: exactly the amount field of its kind is set."""

    id: uuid.UUID
    bucket_id: uuid.UUID
    kind: RuleKind
    priority: int
    created_at: datetime.datetime
    percent_bps: int | None = None
    amount_minor: int | None = None
    above_minor: int | None = None
    conditions: Conditions = Conditions()


class PeriodTotals(msgspec.Struct, frozen=True, kw_only=True):
    """What a rule already allocated in the day, ISO week and month of the instant asked."""

    day_minor: int = 0
    week_minor: int = 0
    month_minor: int = 0

    def of(self, period: Period) -> int:
        return {"day": self.day_minor, "week": self.week_minor, "month": self.month_minor}[period]


class RuleAllocation(msgspec.Struct, frozen=True, kw_only=True):
    rule_id: uuid.UUID
    bucket_id: uuid.UUID
    amount_minor: int


class Evaluation(msgspec.Struct, frozen=True, kw_only=True):
    allocations: tuple[RuleAllocation, ...]
    unallocated_minor: int


_no_totals = PeriodTotals()


def ordered(rules: Sequence[Rule]) -> list[Rule]:
    """The rules in the order they apply: priority, then creation, then id."""
    return sorted(rules, key=lambda rule: (rule.priority, rule.created_at, rule.id))


def evaluate(
    amount_minor: int,
    rules: Sequence[Rule],
    *,
    at: datetime.datetime,
    allocated_in_period: Mapping[uuid.UUID, PeriodTotals],
) -> Evaluation:
    """Split `amount_minor` by `rules` at the instant `at` (see the module's docstring)."""
    ensure(amount_minor >= 0, "an amount to split is never negative")
    ensure(at.tzinfo is not None, "rules are evaluated at an aware instant")
    left = amount_minor
    allocations: list[RuleAllocation] = []
    for rule in ordered(rules):
        share = _share(amount_minor, left, rule, at, allocated_in_period.get(rule.id, _no_totals))
        ensure(0 <= share <= left, "a rule allocates at most what is left")
        if share > 0:
            allocations.append(
                RuleAllocation(rule_id=rule.id, bucket_id=rule.bucket_id, amount_minor=share)
            )
            left -= share
    return Evaluation(allocations=tuple(allocations), unallocated_minor=left)


def _share(
    amount_minor: int, left: int, rule: Rule, at: datetime.datetime, totals: PeriodTotals
) -> int:
    conditions = rule.conditions
    if not applies(conditions, at):
        return 0
    share = min(wanted(amount_minor, left, rule), left)
    if conditions.minimum_left_minor is not None:
        share = min(share, max(0, left - conditions.minimum_left_minor))
    cap = conditions.maximum_per_period
    if cap is not None:
        share = min(share, max(0, cap.amount_minor - totals.of(cap.period)))
    return max(0, share)


def wanted(amount_minor: int, left: int, rule: Rule) -> int:
    """What the rule's kind asks for, before any cap."""
    match rule.kind:
        case "percentage":
            ensure(rule.percent_bps is not None, "a percentage rule has percent_bps")
            return amount_minor * (rule.percent_bps or 0) // basis_points_whole
        case "fixed":
            ensure(rule.amount_minor is not None, "a fixed rule has an amount")
            return rule.amount_minor or 0
        case "threshold":
            ensure(rule.above_minor is not None, "a threshold rule has above")
            return max(0, amount_minor - (rule.above_minor or 0))
        case "remainder":
            return left
        case _:
            unreachable(f"unknown rule kind {rule.kind!r}")


def applies(conditions: Conditions, at: datetime.datetime) -> bool:
    """Whether the rule's window and days of the month include the instant `at`."""
    if conditions.active_from is not None and at < conditions.active_from:
        return False
    if conditions.active_until is not None and at >= conditions.active_until:
        return False
    days = conditions.days_of_month
    if days is not None:
        day = at.astimezone(datetime.UTC)
        last = calendar.monthrange(day.year, day.month)[1]
        if day.day not in {min(named, last) for named in days}:
            return False
    return True


def period_start(period: Period, at: datetime.datetime) -> datetime.datetime:
    """The UTC start of the calendar day, ISO week (Monday) or month that `at` falls in."""
    day = at.astimezone(datetime.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day
    if period == "week":
        return day - datetime.timedelta(days=day.weekday())
    return day.replace(day=1)


def period_end(period: Period, at: datetime.datetime) -> datetime.datetime:
    """The UTC start of the day, week or month after the one `at` falls in."""
    start = period_start(period, at)
    if period == "day":
        return start + datetime.timedelta(days=1)
    if period == "week":
        return start + datetime.timedelta(days=7)
    return (start + datetime.timedelta(days=32)).replace(day=1)
