"""The compliance checks behind `ComplianceCheck`, chosen by configuration.

- `RuleBasedCheck` (the default, no external API): the recipient's name against the loaded
  sanctions lists (a strong match blocks, a weaker one opens a review) and the risk score
  (high opens a review).
- `NoOpCheck`: approves everything, for an emergency when screening itself is broken;
  every decision says so in its reasons.
- `CachedCheck`: remembers the decisions of another check for the same recipient and amount
  band for a short time, for bursts of payouts to one supplier.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from compliance.decisions import ComplianceCheck, Decision, Outcome, PayoutFacts
from compliance.risk import risk_score, score_max
from compliance.sanctions.screening import SanctionsIndex, ScreeningThresholds

review_score_min = 70
cache_entries_max = 10_000
screened_entries_max = 100_000
cache_seconds_default = 60
amount_band_usd_minor = 100_000  # Decisions are shared within bands of USD 1,000.


class RuleBasedCheck:
    def __init__(self, index: SanctionsIndex, *, thresholds: ScreeningThresholds) -> None:
        self._index = index
        self._thresholds = thresholds
        # Screening is a pure function of the name, the country and the index, and an index
        # never changes once built: results are remembered until the index is replaced, so
        # paying the same recipient again costs a dictionary lookup, never a stale answer.
        self._screened: dict[tuple[str, str], Decision | None] = {}

    @property
    def index(self) -> SanctionsIndex:
        return self._index

    def replace_index(self, index: SanctionsIndex) -> None:
        """Swap in a rebuilt index (new lists loaded); decisions in flight keep the old."""
        self._index = index
        self._screened = {}

    async def check(self, facts: PayoutFacts) -> Decision:
        sanctions = self._sanctions(name=facts.recipient_name, country=facts.recipient_country)
        if sanctions is not None:
            return sanctions
        score, reasons = risk_score(facts)
        outcome: Outcome = "review" if score >= review_score_min else "approve"
        return Decision(outcome=outcome, score=score, reasons=reasons)

    async def screen_party(self, *, name: str, country: str) -> Decision:
        sanctions = self._sanctions(name=name, country=country)
        if sanctions is not None:
            return sanctions
        return Decision(outcome="approve", score=0, reasons=())

    def _sanctions(self, *, name: str, country: str) -> Decision | None:
        """Block or review on the best sanctions hit; None when no hit reaches review."""
        key = (name, country)
        if key in self._screened:
            return self._screened[key]
        decision = self._screen(name=name, country=country)
        if len(self._screened) >= screened_entries_max:
            self._screened.clear()  # Bounded memory; the next payments simply re-screen.
        self._screened[key] = decision
        return decision

    def _screen(self, *, name: str, country: str) -> Decision | None:
        hits = self._index.screen(name, country=country)
        if not hits:
            return None
        best = hits[0]
        reason = f"sanctions_match:{best.party.list_name}:{best.party.entry_id}"
        if best.score >= self._thresholds.block_at:
            return Decision(outcome="block", score=score_max, reasons=(reason,))
        if best.score >= self._thresholds.review_at:
            return Decision(outcome="review", score=round(best.score), reasons=(reason,))
        return None


class NoOpCheck:
    async def check(self, facts: PayoutFacts) -> Decision:
        return Decision(outcome="approve", score=0, reasons=("compliance_checks_disabled",))

    async def screen_party(self, *, name: str, country: str) -> Decision:
        return Decision(outcome="approve", score=0, reasons=("compliance_checks_disabled",))


class CachedCheck:
    def __init__(self, inner: ComplianceCheck, *, seconds: int = cache_seconds_default) -> None:
        self._inner = inner
        self._seconds = seconds
        self._entries: OrderedDict[tuple[object, ...], tuple[float, Decision]] = OrderedDict()

    async def check(self, facts: PayoutFacts) -> Decision:
        key = (
            facts.tenant_id,
            facts.recipient_name,
            facts.recipient_country,
            facts.target_currency,
            facts.amount_usd_minor // amount_band_usd_minor,
        )
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        decision = await self._inner.check(facts)
        self._remember(key, now, decision)
        return decision

    async def screen_party(self, *, name: str, country: str) -> Decision:
        # Onboarding is rare and must see freshly loaded lists: never cached.
        return await self._inner.screen_party(name=name, country=country)

    def _remember(self, key: tuple[object, ...], now: float, decision: Decision) -> None:
        self._entries[key] = (now + self._seconds, decision)
        self._entries.move_to_end(key)
        while len(self._entries) > cache_entries_max:
            self._entries.popitem(last=False)
