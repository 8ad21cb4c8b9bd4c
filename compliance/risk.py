"""The risk score of a payout: amount against the tier, corridor, recipient age, velocity
and country, each adding points with a reason, capped at 100.

The weights are named constants so compliance officers can read what drives a review.
"""

from __future__ import annotations

import datetime

from compliance.decisions import PayoutFacts
from ledger.invariants import ensure

score_max = 100
share_of_daily_limit_points = 40  # A payout of the whole daily limit scores this much.
new_recipient_hours = 24
new_recipient_points = 15
young_recipient_days = 7
young_recipient_points = 5
velocity_high_per_hour = 50
velocity_high_points = 25
velocity_elevated_per_hour = 20
velocity_elevated_points = 10
corridor_points = {"IDR": 5, "GBP": 0, "EUR": 0}
# Jurisdictions under broad sanctions or on FATF's call for action.
high_risk_countries = frozenset({"IR", "KP", "SY", "CU", "MM", "RU", "BY"})
high_risk_country_points = 60


def risk_score(
    facts: PayoutFacts, *, now: datetime.datetime | None = None
) -> tuple[int, tuple[str, ...]]:
    """The score and the reasons that raised it."""
    ensure(facts.amount_usd_minor >= 0, "a payout's amount is not negative")
    moment = now or datetime.datetime.now(tz=datetime.UTC)
    points: list[tuple[int, str]] = []
    if facts.daily_limit_usd_minor > 0:
        share = min(1.0, facts.amount_usd_minor / facts.daily_limit_usd_minor)
        points.append((round(share * share_of_daily_limit_points), "amount_for_tier"))
    age = moment - facts.recipient_created_at
    if age < datetime.timedelta(hours=new_recipient_hours):
        points.append((new_recipient_points, "new_recipient"))
    elif age < datetime.timedelta(days=young_recipient_days):
        points.append((young_recipient_points, "young_recipient"))
    if facts.payouts_last_hour > velocity_high_per_hour:
        points.append((velocity_high_points, "velocity_high"))
    elif facts.payouts_last_hour > velocity_elevated_per_hour:
        points.append((velocity_elevated_points, "velocity_elevated"))
    points.append((corridor_points.get(facts.target_currency, 10), "corridor"))
    if facts.recipient_country in high_risk_countries:
        points.append((high_risk_country_points, "high_risk_country"))
    score = min(score_max, sum(value for value, _ in points))
    return score, tuple(reason for value, reason in points if value > 0)
