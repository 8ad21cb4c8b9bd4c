"""FX netting of a batch's currency pair: the rate is applied once to each group's total,
the items add up to the pair's chain exactly (source, fee and target), each item keeps the
amount it named, and every item is within one minor unit of pricing it on its own.

Against an oracle in exact fractions, over currencies with 0, 2, 3 and 4 decimals and
realistic rates between them: the pair buys exactly the floored conversion of the
source-given total and costs exactly the ceiled conversion of the target-given total; each
item's allocated target, source and fee share lies within rounding of its exact pro-rata
share of those totals (between the floor and the ceiling of it), none is negative, and the
shares add up to the totals exactly.
"""

from __future__ import annotations

import math
from decimal import ROUND_FLOOR, Decimal
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from fx.netting import NettingItem, net_pair
from fx.pricing import fee_share_minor
from ledger.currencies import CurrencyRegistry
from tests.fx.markets import minor_scale, pairs_with_rates
from tests.fx.markets import registry as markets_registry

currencies = CurrencyRegistry(["EUR", "IDR", "GBP", "USD"])
eur, idr, gbp = currencies.get("EUR"), currencies.get("IDR"), currencies.get("GBP")
item_strategy = st.one_of(
    st.builds(
        NettingItem,
        source_amount_minor=st.integers(1, 10**9),
        target_amount_minor=st.none(),
    ),
    st.builds(
        NettingItem,
        source_amount_minor=st.none(),
        target_amount_minor=st.integers(1, 10**9),
    ),
)
rates = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(20000), places=6)


@given(
    items=st.lists(item_strategy, min_size=1, max_size=80),
    rate=rates,
    fee_bps=st.integers(0, 500),
    fixed=st.integers(0, 300),
)
def test_items_add_up_to_the_chain_exactly(
    items: list[NettingItem], rate: Decimal, fee_bps: int, fixed: int
) -> None:
    netting = net_pair(
        source=eur, target=idr, rate=rate, fee_bps=fee_bps, fixed_fee_minor=fixed, items=items
    )
    totals = netting.totals
    assert sum(a.source_amount_minor for a in netting.items) == totals.source_amount_minor
    assert sum(a.fee_minor for a in netting.items) == totals.fee_minor
    assert sum(a.target_amount_minor for a in netting.items) == totals.target_amount_minor
    assert totals.fee_minor == fee_share_minor(totals.source_amount_minor, fee_bps) + fixed * len(
        items
    )
    for item, amounts in zip(items, netting.items, strict=True):
        if item.source_amount_minor is not None:
            assert amounts.source_amount_minor == item.source_amount_minor
            alone = int(
                (Decimal(item.source_amount_minor).scaleb(-eur.minor_units) * rate)
                .scaleb(idr.minor_units)
                .to_integral_value(rounding=ROUND_FLOOR)
            )
            assert abs(amounts.target_amount_minor - alone) <= 1
        else:
            assert amounts.target_amount_minor == item.target_amount_minor


@given(items=st.lists(item_strategy, min_size=1, max_size=40))
def test_a_same_currency_pair_sends_exactly_what_each_item_names(
    items: list[NettingItem],
) -> None:
    netting = net_pair(
        source=gbp, target=gbp, rate=Decimal(1), fee_bps=0, fixed_fee_minor=0, items=items
    )
    for item, amounts in zip(items, netting.items, strict=True):
        named = item.source_amount_minor or item.target_amount_minor
        assert amounts.source_amount_minor == amounts.target_amount_minor == named


def test_the_rate_is_applied_once_to_the_total() -> None:
    # Priced one by one, three items of 0.01 EUR at 1.5 would each get 0.01 (1.5 floored to 1):
    # 3 units in all. Netted, the pair buys 4 units (4.5 floored) and allocates all of them.
    items = [NettingItem(source_amount_minor=1, target_amount_minor=None)] * 3
    netting = net_pair(
        source=eur, target=gbp, rate=Decimal("1.5"), fee_bps=0, fixed_fee_minor=0, items=items
    )
    assert netting.totals.target_amount_minor == 4
    assert sorted(a.target_amount_minor for a in netting.items) == [1, 1, 2]


wide_items = st.one_of(
    st.builds(
        NettingItem,
        source_amount_minor=st.integers(1, 10**13),
        target_amount_minor=st.none(),
    ),
    st.builds(
        NettingItem,
        source_amount_minor=st.none(),
        target_amount_minor=st.integers(1, 10**13),
    ),
)


def _within_its_share(allocated: int, total: int, weight: int, weights_total: int) -> bool:
    """`allocated` is the exact share `total * weight / weights_total`, floored or ceiled."""
    exact = Fraction(total * weight, weights_total)
    return math.floor(exact) <= allocated <= math.ceil(exact)


@given(
    pair=pairs_with_rates(),
    items=st.lists(wide_items, min_size=1, max_size=60),
    fee_bps=st.integers(0, 500),
    fixed=st.integers(0, 5_000),
)
def test_every_item_gets_its_exact_share_within_rounding_in_any_currencies(
    pair: tuple[str, str, Decimal], items: list[NettingItem], fee_bps: int, fixed: int
) -> None:
    source, target, rate = pair
    netting = net_pair(
        source=markets_registry.get(source),
        target=markets_registry.get(target),
        rate=rate,
        fee_bps=fee_bps,
        fixed_fee_minor=fixed,
        items=items,
    )
    per_source_minor = Fraction(rate) * minor_scale(target) / minor_scale(source)
    given = [(i.source_amount_minor, a) for i, a in zip(items, netting.items, strict=True)]
    wanted = [(i.target_amount_minor, a) for i, a in zip(items, netting.items, strict=True)]
    given_total = sum(named for named, _ in given if named is not None)
    wanted_total = sum(named for named, _ in wanted if named is not None)
    bought = math.floor(given_total * per_source_minor)
    needed = math.ceil(wanted_total / per_source_minor)
    for named, amounts in given:
        if named is not None:
            assert amounts.source_amount_minor == named
            assert _within_its_share(amounts.target_amount_minor, bought, named, given_total)
    for named, amounts in wanted:
        if named is not None:
            assert amounts.target_amount_minor == named
            assert _within_its_share(amounts.source_amount_minor, needed, named, wanted_total)
    assert sum(a.target_amount_minor for n, a in given if n is not None) == bought
    assert sum(a.source_amount_minor for n, a in wanted if n is not None) == needed
    totals = netting.totals
    assert totals.source_amount_minor == given_total + needed
    assert totals.target_amount_minor == bought + wanted_total
    share_total = math.ceil(Fraction(totals.source_amount_minor * fee_bps, 10_000))
    assert totals.fee_minor == share_total + fixed * len(items)
    for amounts in netting.items:
        assert min(amounts.source_amount_minor, amounts.target_amount_minor) >= 0
        assert amounts.fee_minor >= fixed
        assert _within_its_share(
            amounts.fee_minor - fixed,
            share_total,
            amounts.source_amount_minor,
            totals.source_amount_minor,
        )
