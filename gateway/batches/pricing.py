"""Rates and amounts of a batch: one rate lock per currency pair, then exact netting.

Each pair of a batch is quoted once through the FX quoter, with the tenant's pricing policy
as any quote: the quote is the pair's rate lock, stored under an id derived from the batch
(so a retried batch finds the very same rate) and used by the batch only. Its rate prices
the pair's totals once (`fx.netting`), and every item gets its exact share.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from decimal import Decimal

import msgspec

from fx.netting import ItemAmounts, NettingItem, PairNetting, net_pair
from fx.pricing import Pricing, fee_share_minor
from fx.quoter import Quoter
from fx.quotes import LockedQuote
from gateway.batches.parsing import ParsedItem
from ledger.currencies import CurrencyRegistry
from ledger.errors import InvalidAmount, LedgerError
from ledger.invariants import ensure

Pair = tuple[str, str]


class PairPrice(msgspec.Struct, frozen=True, kw_only=True):
    """A pair's rate lock and the fixed fee each of its items pays (source minor units)."""

    quote: LockedQuote
    fixed_fee_minor: int


def pair_quote_id(*, batch_id: int, pair: Pair) -> int:
    digest = hashlib.blake2b(
        f"{batch_id:032x}:{pair[0]}:{pair[1]}".encode(), digest_size=16, person=b"kovra.bquote"
    ).digest()
    return int.from_bytes(digest, "big") or 1


async def lock_pair(
    quoter: Quoter,
    *,
    tenant_id: int,
    batch_id: int,
    pricing: Pricing,
    pair: Pair,
    items: Sequence[ParsedItem],
) -> PairPrice:
    """Quote the pair once (on its source-given total, else its target-given total) and
    mark the quote used by this batch, so no transfer can spend it."""
    source_total = sum(item.source_amount or 0 for item in items)
    target_total = sum(item.target_amount or 0 for item in items)
    quote_id = pair_quote_id(batch_id=batch_id, pair=pair)
    quote = await quoter.quote(
        tenant_id=tenant_id,
        quote_id=quote_id,
        pricing=pricing,
        source_currency=pair[0],
        target_currency=pair[1],
        source_amount=source_total if source_total else None,
        target_amount=None if source_total else target_total,
    )
    await quoter.store.consume(tenant_id=tenant_id, quote_id=quote_id, consumer_id=batch_id)
    # The quote's fee is its percentage share plus one fixed fee; each item pays the latter.
    fixed = quote.fee_amount - fee_share_minor(quote.source_amount, pricing.fee_bps)
    ensure(fixed >= 0, "a quote's fee covers its percentage share")
    return PairPrice(quote=quote, fixed_fee_minor=fixed)


class PairAmounts(msgspec.Struct, frozen=True, kw_only=True):
    netting: PairNetting
    indices: list[int]


def net_items(
    currencies: CurrencyRegistry,
    *,
    price: PairPrice,
    fee_bps: int,
    items: Sequence[ParsedItem],
) -> tuple[PairAmounts | None, list[tuple[ParsedItem, LedgerError]]]:
    """The pair's netting over `items`, less the items too small to convert on their own
    share (refused with the reason); nets again until every item has positive amounts."""
    source = currencies.get(price.quote.source_currency)
    target = currencies.get(price.quote.target_currency)
    live = list(items)
    refused: list[tuple[ParsedItem, LedgerError]] = []
    while live:
        netting = net_pair(
            source=source,
            target=target,
            rate=Decimal(price.quote.rate),
            fee_bps=fee_bps,
            fixed_fee_minor=price.fixed_fee_minor,
            items=[
                NettingItem(
                    source_amount_minor=i.source_amount, target_amount_minor=i.target_amount
                )
                for i in live
            ],
        )
        small = [i for i, a in zip(live, netting.items, strict=True) if not _positive(a)]
        if not small:
            return PairAmounts(netting=netting, indices=[i.index for i in live]), refused
        refused.extend(
            (item, InvalidAmount("the amount is too small to convert into one minor unit"))
            for item in small
        )
        small_indices = {i.index for i in small}
        live = [i for i in live if i.index not in small_indices]
    return None, refused


def _positive(amounts: ItemAmounts) -> bool:
    return amounts.source_amount_minor > 0 and amounts.target_amount_minor > 0
