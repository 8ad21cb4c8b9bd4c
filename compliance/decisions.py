"""What compliance is asked about a payout, and what it answers.

`check(facts) -> Decision` is the one interface the transfer lifecycle calls (and
`screen_party` the one recipient onboarding calls); it never sees payment internals, only
these facts. The decision is approve, review (a case is opened and
the funds stay held) or block, with a 0-100 score and the reasons.
"""

from __future__ import annotations

import datetime
from typing import Literal, Protocol

import msgspec

Outcome = Literal["approve", "review", "block"]


class PayoutFacts(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: int
    tier: str
    source_currency: str
    target_currency: str
    amount_usd_minor: int
    daily_limit_usd_minor: int
    recipient_name: str
    recipient_country: str
    recipient_created_at: datetime.datetime
    payouts_last_hour: int


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    outcome: Outcome
    score: int
    reasons: tuple[str, ...]


class ComplianceCheck(Protocol):
    async def check(self, facts: PayoutFacts) -> Decision:
        """A payout at transfer time: sanctions and risk."""
        ...

    async def screen_party(self, *, name: str, country: str) -> Decision:
        """A counterparty at onboarding (a new recipient): sanctions only, no amount yet."""
        ...
