"""The compliance checks decide as documented, and the cache answers only within its window.

`RuleBasedCheck`: a listed name, written exactly (in any order), is blocked with score 100 and
a reason naming the list and entry; a near match (a partial name, between the review and
block thresholds) opens a review naming the entry; the check's own thresholds decide what a
hit means; an ordinary name with a small amount is approved; a high risk score alone (a
high-risk country and a new recipient) opens a review with the risk reasons; replacing the
index changes later decisions; screening a party at onboarding applies the sanctions rules
only; a name is screened once per index (paying the same recipient again does not search
again) and again after the index is replaced. `NoOpCheck` approves everything (payouts and
parties) and says so. `CachedCheck` returns the inner decision without asking again for the
same tenant, recipient, corridor and USD 1,000 amount band within its window, asks again
for anything else and after the window, and keeps at most `cache_entries_max` entries; it
never caches party screening. The cache has no clock parameter, so its clock is faked by
replacing the `time` module that `compliance.checks` reads.
"""

from __future__ import annotations

import datetime
import types

import pytest

from compliance import checks
from compliance.checks import CachedCheck, NoOpCheck, RuleBasedCheck
from compliance.decisions import Decision, PayoutFacts
from compliance.sanctions.lists import SanctionedParty
from compliance.sanctions.screening import SanctionsIndex, ScreeningThresholds

long_ago = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
listed = SanctionedParty(
    list_name="TEST-LIST",
    entry_id="4711",
    name="VOROBYEV, Stanislav Anatolyevich",
    aliases=("Stas Vorobyev",),
    country="RU",
)
other_listed = SanctionedParty(
    list_name="OTHER-LIST", entry_id="99", name="Golden Crescent Shipping LLC", country="AE"
)
default_thresholds = ScreeningThresholds()


def payout(
    *,
    name: str = "Maria Garcia Lopez",
    country: str = "ES",
    amount: int = 5_000,
    tenant_id: int = 1,
    target_currency: str = "EUR",
    created_at: datetime.datetime = long_ago,
) -> PayoutFacts:
    return PayoutFacts(
        tenant_id=tenant_id,
        tier="standard",
        source_currency="USD",
        target_currency=target_currency,
        amount_usd_minor=amount,
        daily_limit_usd_minor=10_000_000,
        recipient_name=name,
        recipient_country=country,
        recipient_created_at=created_at,
        payouts_last_hour=0,
    )


def rule_based(
    *parties: SanctionedParty, thresholds: ScreeningThresholds = default_thresholds
) -> RuleBasedCheck:
    index = SanctionsIndex.build(parties or (listed, other_listed), thresholds=thresholds)
    return RuleBasedCheck(index, thresholds=thresholds)


@pytest.mark.parametrize(
    "name",
    [
        "Stanislav Anatolyevich Vorobyev",
        "VOROBYEV, Stanislav Anatolyevich",
        "vorobyev stanislav anatolyevich",
        "Stas Vorobyev",
    ],
)
async def test_an_exactly_listed_name_is_blocked_naming_the_entry(name: str) -> None:
    decision = await rule_based().check(payout(name=name))
    assert decision == Decision(
        outcome="block", score=100, reasons=("sanctions_match:TEST-LIST:4711",)
    )


async def test_the_block_names_the_entry_that_matched() -> None:
    decision = await rule_based().check(payout(name="Golden Crescent Shipping LLC"))
    assert decision.outcome == "block"
    assert decision.reasons == ("sanctions_match:OTHER-LIST:99",)


@pytest.mark.parametrize("country", ["ES", "RU"])
async def test_a_near_match_opens_a_review_naming_the_entry(country: str) -> None:
    # A partial name scores 88 (91 with the party's country): between review and block.
    decision = await rule_based().check(payout(name="Stanislav Vorobyev", country=country))
    assert decision.outcome == "review"
    assert decision.reasons == ("sanctions_match:TEST-LIST:4711",)
    assert default_thresholds.review_at <= decision.score < default_thresholds.block_at


async def test_the_checks_thresholds_decide_what_a_hit_means() -> None:
    strict = ScreeningThresholds(review_at=80.0, block_at=85.0)
    decision = await rule_based(listed, thresholds=strict).check(payout(name="Stanislav Vorobyev"))
    assert decision.outcome == "block"
    assert decision.score == 100
    assert decision.reasons == ("sanctions_match:TEST-LIST:4711",)


async def test_an_ordinary_name_with_a_small_amount_is_approved() -> None:
    decision = await rule_based().check(payout(name="Maria Garcia Lopez", amount=5_000))
    assert decision.outcome == "approve"
    assert decision.score < checks.review_score_min
    assert not any(reason.startswith("sanctions_match") for reason in decision.reasons)


async def test_a_high_risk_score_alone_opens_a_review() -> None:
    # A high-risk country (60) and a recipient created an hour ago (15): 75, no list hit.
    just_created = datetime.datetime.now(tz=datetime.UTC) - datetime.timedelta(hours=1)
    decision = await rule_based().check(
        payout(name="Ali Rezaei", country="IR", created_at=just_created)
    )
    assert decision.outcome == "review"
    assert decision.score >= checks.review_score_min
    assert set(decision.reasons) == {"high_risk_country", "new_recipient"}


async def test_a_risk_score_just_below_the_review_score_is_approved() -> None:
    # The high-risk country alone scores 60, under the review score of 70.
    decision = await rule_based().check(payout(name="Ali Rezaei", country="IR"))
    assert decision == Decision(outcome="approve", score=60, reasons=("high_risk_country",))


async def test_a_replaced_index_decides_later_payouts() -> None:
    check = rule_based(other_listed)
    name = "Stanislav Anatolyevich Vorobyev"
    assert (await check.check(payout(name=name))).outcome == "approve"
    check.replace_index(SanctionsIndex.build([listed]))
    assert (await check.check(payout(name=name))).outcome == "block"
    assert check.index.party_count == 1


async def test_a_name_is_screened_once_per_index(monkeypatch: pytest.MonkeyPatch) -> None:
    check = rule_based(listed)
    searched: list[str] = []
    search = check.index.screen

    def counting(name: str, *, country: str) -> object:
        searched.append(name)
        return search(name, country=country)

    monkeypatch.setattr(check.index, "screen", counting)
    first = await check.check(payout(name="Stas Vorobyev", country="RU"))
    again = await check.check(payout(name="Stas Vorobyev", country="RU", amount=9_000))
    assert first.outcome == again.outcome == "block"
    assert searched == ["Stas Vorobyev"]

    check.replace_index(SanctionsIndex.build([other_listed], thresholds=default_thresholds))
    assert (await check.check(payout(name="Stas Vorobyev", country="RU"))).outcome == "approve"


@pytest.mark.parametrize(
    ("name", "country", "expected"),
    [
        (
            "Stanislav Anatolyevich Vorobyev",
            "ES",
            Decision(outcome="block", score=100, reasons=("sanctions_match:TEST-LIST:4711",)),
        ),
        (
            "Stanislav Vorobyev",
            "ES",
            Decision(outcome="review", score=88, reasons=("sanctions_match:TEST-LIST:4711",)),
        ),
        ("Maria Garcia Lopez", "ES", Decision(outcome="approve", score=0, reasons=())),
        # Onboarding screens sanctions only: a high-risk country alone is no reason.
        ("Ali Rezaei", "IR", Decision(outcome="approve", score=0, reasons=())),
    ],
)
async def test_screening_a_party_is_sanctions_only(
    name: str, country: str, expected: Decision
) -> None:
    assert await rule_based().screen_party(name=name, country=country) == expected


@pytest.mark.parametrize(
    "facts",
    [
        payout(),
        payout(name="Stanislav Anatolyevich Vorobyev", country="RU", amount=10**12),
        payout(name="Ali Rezaei", country="KP", target_currency="NGN"),
    ],
)
async def test_the_no_op_check_approves_everything_and_says_so(facts: PayoutFacts) -> None:
    decision = await NoOpCheck().check(facts)
    assert decision == Decision(outcome="approve", score=0, reasons=("compliance_checks_disabled",))


class CountingCheck:
    """An inner check that answers a new decision (its call number as score) on every call."""

    def __init__(self) -> None:
        self.calls: list[PayoutFacts] = []
        self.parties: list[tuple[str, str]] = []

    async def check(self, facts: PayoutFacts) -> Decision:
        self.calls.append(facts)
        return Decision(outcome="review", score=len(self.calls), reasons=("counted",))

    async def screen_party(self, *, name: str, country: str) -> Decision:
        self.parties.append((name, country))
        return Decision(outcome="approve", score=len(self.parties), reasons=("counted",))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Replaces the `time` module as `compliance.checks` sees it (and only there)."""
    fake = FakeClock()
    monkeypatch.setattr(checks, "time", types.SimpleNamespace(monotonic=fake.monotonic))
    return fake


async def test_the_cache_answers_within_its_window_without_asking(clock: FakeClock) -> None:
    inner = CountingCheck()
    cached = CachedCheck(inner, seconds=30)
    first = await cached.check(payout())
    clock.now += 29.9
    again = await cached.check(payout())
    assert again == first
    assert len(inner.calls) == 1


async def test_the_cache_asks_again_once_its_window_has_passed(clock: FakeClock) -> None:
    inner = CountingCheck()
    cached = CachedCheck(inner, seconds=30)
    first = await cached.check(payout())
    clock.now += 30
    second = await cached.check(payout())
    assert len(inner.calls) == 2
    assert second != first
    clock.now += 10
    assert await cached.check(payout()) == second  # The new answer is cached afresh.
    assert len(inner.calls) == 2


async def test_the_cache_shares_a_decision_within_a_usd_1000_band(clock: FakeClock) -> None:
    inner = CountingCheck()
    cached = CachedCheck(inner)
    band = checks.amount_band_usd_minor
    await cached.check(payout(amount=band))
    await cached.check(payout(amount=2 * band - 1))
    assert len(inner.calls) == 1
    await cached.check(payout(amount=2 * band))
    assert len(inner.calls) == 2


@pytest.mark.parametrize(
    "different",
    [
        payout(tenant_id=2),
        payout(name="Maria Garcia"),
        payout(country="PT"),
        payout(target_currency="GBP"),
        payout(amount=10**9),
    ],
)
async def test_the_cache_asks_again_for_a_different_payout(
    clock: FakeClock, different: PayoutFacts
) -> None:
    inner = CountingCheck()
    cached = CachedCheck(inner)
    first = await cached.check(payout())
    assert await cached.check(different) != first
    assert inner.calls == [payout(), different]


async def test_the_cache_evicts_its_oldest_entry_beyond_its_size(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checks, "cache_entries_max", 3)
    inner = CountingCheck()
    cached = CachedCheck(inner)
    tenants = [payout(tenant_id=tenant) for tenant in range(1, 5)]
    for facts in tenants:
        await cached.check(facts)
    for facts in tenants[1:]:
        await cached.check(facts)
    assert len(inner.calls) == 4  # The three newest are still cached.
    await cached.check(tenants[0])
    assert len(inner.calls) == 5  # The oldest was evicted.


async def test_the_cache_never_caches_party_screening(clock: FakeClock) -> None:
    inner = CountingCheck()
    cached = CachedCheck(inner, seconds=60)
    first = await cached.screen_party(name="Maria Garcia Lopez", country="ES")
    second = await cached.screen_party(name="Maria Garcia Lopez", country="ES")
    assert inner.parties == [("Maria Garcia Lopez", "ES")] * 2
    assert (first.score, second.score) == (1, 2)
    assert inner.calls == []


async def test_the_cache_expires_with_the_real_clock() -> None:
    # Without a fake clock: a zero-second window never answers from the cache.
    inner = CountingCheck()
    cached = CachedCheck(inner, seconds=0)
    await cached.check(payout())
    await cached.check(payout())
    assert len(inner.calls) == 2
    lasting = CachedCheck(inner, seconds=60)
    await lasting.check(payout())
    await lasting.check(payout())
    assert len(inner.calls) == 3


async def test_the_cache_in_front_of_the_rule_based_check_keeps_its_decisions() -> None:
    cached = CachedCheck(rule_based())
    blocked = await cached.check(payout(name="Stanislav Anatolyevich Vorobyev"))
    approved = await cached.check(payout(name="Maria Garcia Lopez"))
    assert (blocked.outcome, approved.outcome) == ("block", "approve")
    assert blocked.reasons == ("sanctions_match:TEST-LIST:4711",)
