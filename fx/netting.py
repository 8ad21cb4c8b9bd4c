"""FX netting: a batch converts each currency pair once, at one locked rate, for the total.

Items name either the amount they send (`source_amount`) or the amount the recipient gets
(`target_amount`). The items of a pair are priced in two groups with the rounding rules of
`fx.pricing` applied once to each group's total: the target bought with the source-given
total is rounded down, the source needed for the target-given total is rounded up, and the
fee's share is rounded up on the chain's whole source amount. Each item then gets its part
of the totals by the largest-remainder method (`ledger.allocation`), so the items add up to
the pair's conversion chain to the minor unit. Each item also pays the policy's fixed fee
once, like a single payout would.
"""

from __future__ import annotations

import math
from decimal import Decimal

import msgspec

from fx.pricing import basis_points, converted_minor, fee_share_minor, source_needed_minor
from ledger.allocation import allocate
from ledger.currencies import Currency
from ledger.invariants import ensure


class NettingItem(msgspec.Struct, frozen=True, kw_only=True):
    """What one item asks for: exactly one of the two amounts (minor units)."""

    source_amount_minor: int | None
    target_amount_minor: int | None


class ItemAmounts(msgspec.Struct, frozen=True, kw_only=True):
    source_amount_minor: int
    fee_minor: int
    target_amount_minor: int


class PairTotals(msgspec.Struct, frozen=True, kw_only=True):
    """The amounts of the pair's one conversion chain."""

    source_amount_minor: int
    fee_minor: int
    target_amount_minor: int


class PairNetting(msgspec.Struct, frozen=True, kw_only=True):
    totals: PairTotals
    items: list[ItemAmounts]


def net_pair(
    *,
    source: Currency,
    target: Currency,
    rate: Decimal,
    fee_bps: int,
    fixed_fee_minor: int,
    items: list[NettingItem],
) -> PairNetting:
    """The pair's chain totals and each item's exact share of them (in the items' order).

    An item may come out with a zero amount when it is too small to convert on its own;
    the caller refuses such items and nets the rest again.
    """
    ensure(bool(items), "a pair has at least one item")
    ensure(rate > 0, "a conversion rate is positive")
    ensure(fixed_fee_minor >= 0 and 0 <= fee_bps < basis_points, "fees are not negative")
    sources: list[int] = [0] * len(items)
    targets: list[int] = [0] * len(items)
    by_source = [i for i, item in enumerate(items) if item.source_amount_minor is not None]
    by_target = [i for i, item in enumerate(items) if item.target_amount_minor is not None]
    ensure(len(by_source) + len(by_target) == len(items), "each item names exactly one amount")
    if by_source:
        given = [items[i].source_amount_minor or 0 for i in by_source]
        bought = math.floor(
            converted_minor(amount_minor=sum(given), source=source, target=target, rate=rate)
        )
        for i, source_minor, target_minor in zip(
            by_source, given, allocate(bought, given), strict=True
        ):
            sources[i], targets[i] = source_minor, target_minor
    if by_target:
        wanted = [items[i].target_amount_minor or 0 for i in by_target]
        needed = math.ceil(
            source_needed_minor(amount_minor=sum(wanted), source=source, target=target, rate=rate)
        )
        for i, target_minor, source_minor in zip(
            by_target, wanted, allocate(needed, wanted), strict=True
        ):
            sources[i], targets[i] = source_minor, target_minor
    source_total = sum(sources)
    share_total = fee_share_minor(source_total, fee_bps)
    shares = allocate(share_total, sources) if source_total > 0 else [0] * len(items)
    fees = [share + fixed_fee_minor for share in shares]
    totals = PairTotals(
        source_amount_minor=source_total,
        fee_minor=share_total + fixed_fee_minor * len(items),
        target_amount_minor=sum(targets),
    )
    amounts = [
        ItemAmounts(source_amount_minor=s, fee_minor=f, target_amount_minor=t)
        for s, f, t in zip(sources, fees, targets, strict=True)
    ]
    ensure(
        sum(a.source_amount_minor for a in amounts) == totals.source_amount_minor
        and sum(a.fee_minor for a in amounts) == totals.fee_minor
        and sum(a.target_amount_minor for a in amounts) == totals.target_amount_minor,
        "the items of a pair add up to its conversion chain",
    )
    return PairNetting(totals=totals, items=amounts)
