"""Accepting a batch: validate, screen, net, hold in the ledger, then record, per batch.

The request path of `POST /v1/batches`, with no round trip per item:

1. items are checked one by one (currency, recipient from one cache read, corridor);
2. each currency pair is quoted once (its rate lock) and netted: totals priced once, each
   item's exact share allocated (`fx.netting`);
3. daily limits count every item in one Redis script; compliance decides each item,
   sharing decisions per recipient and amount band; a block is a per-item error, a review
   keeps the item `in_review` with a case;
4. the ledger converts each pair once (`ledger.netting`: one linked chain per pair, or one
   for the whole batch when it is atomic) and holds every item with its own pending
   transfers, in requests of up to 8,189 transfers;
5. one Postgres transaction records the batch, its items as transfers (the worker then runs
   their lifecycle), events, cases, audit records and per-item errors.

Non-atomic: a refused item (invalid, blocked, over the limit, or in a pair the wallet or
the platform's liquidity cannot fund) is reported and the rest go ahead. Atomic: any
refusal refuses the batch, and nothing is held, counted or recorded.

Crash safety. The batch id derives from the Idempotency-Key (`gateway.http.ids.object_id_for`)
and every item id, quote id and ledger transfer id derives from the batch id, so a retry
of the same request repeats the very same ledger writes (TigerBeetle answers `exists`) and
finds the same rate locks. If the process dies after the ledger writes and before the
Postgres transaction, the money sits in the tenant's clearing account with no batch row:
`gateway.batches.repair` finds the pair chains older than the reconcile delay, writes an
'abandoned' tombstone row (which a late request can no longer overwrite: its insert
conflicts and it answers `batch_abandoned`), voids the items' holds and reverses the
chains, so the wallet is whole again.

Daily limits count each batch once. Every attempt names the batch's count marker
(`DailyLimits.batch_marker`), which remembers what was decided for each item: a retry after
a crash or a lost response reuses those decisions and counts nothing again; a failed attempt
gives back what it counted, as does a retry that finds the batch abandoned; and the repair
gives back what an undone batch still holds counted.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import hashlib
import json
import uuid
from collections import defaultdict
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec
from redis.asyncio import Redis

from compliance.audit.outbox import outbox_insert, outbox_row
from compliance.decisions import ComplianceCheck, Decision
from compliance.limits import (
    CountOnce,
    DailyLimits,
    Usage,
    batch_items_counted_max,
    usd_minor_max,
)
from fx.netting import ItemAmounts, PairTotals
from fx.pricing import usd_equivalent_minor
from fx.quoter import Quoter
from fx.rates import RateStale, RateUnavailable
from gateway.batches import wire as batch_wire
from gateway.batches.errors import BatchAbandoned, BatchRejected
from gateway.batches.parsing import Parsed, ParsedItem, RefusedItem
from gateway.batches.pricing import Pair, PairAmounts, PairPrice, lock_pair, net_items
from gateway.batches.records import BatchRecord, BatchRow, record_batch, transfer_columns
from gateway.batches.screening import BatchScreening, fetch_recipients, payout_facts
from gateway.http.ids import encode_id
from gateway.http.ratelimit import Principal
from gateway.infra.database.batch import BatchWriter
from gateway.tenancy.pricing_cache import PricingCache
from gateway.transfers.recipients import RecipientRecord
from gateway.transfers.records import TransferRow
from gateway.transfers.service import event_id, transfer_view
from ledger.errors import DomainError, LedgerError
from ledger.invariants import ensure
from ledger.netting import NettedItem, NettedPair, Netting
from ledger.service import Ledger, amount_minor_max
from ledger.transfers import linked
from rails.corridors import UnsupportedCorridor, choose_rail, corridor_for

batch_item_errors_listed_max = 100
# A batch's count marker (`DailyLimits.consume_many`) has room for every item of the largest.
ensure(
    batch_wire.batch_items_max <= batch_items_counted_max,
    "a batch's count marker holds a flag for each of its items",
)
_view_encoder = msgspec.json.Encoder()


@functools.lru_cache(maxsize=2 * batch_wire.batch_items_max)
def item_id(*, batch_id: int, index: int) -> int:
    """The transfer id of a batch's item `index`: the same for every attempt of the batch.
    Remembered: accepting a batch asks for each item's id several times."""
    digest = hashlib.blake2b(
        f"{batch_id:032x}:{index}".encode(), digest_size=16, person=b"kovra.batchitem"
    ).digest()
    return int.from_bytes(digest, "big") or 1


class _Item(msgspec.Struct, kw_only=True):
    """An item still in the running, and what the steps learned about it."""

    parsed: ParsedItem
    recipient: RecipientRecord
    amounts: ItemAmounts | None = None
    usage: Usage | None = None
    decision: Decision | None = None

    @property
    def pair(self) -> Pair:
        return (self.parsed.source_currency, self.parsed.target_currency)


class _Acceptance:
    """One batch on its way in: its id and mode, the refused items, the blocked ones, the
    pairs' totals, and the usage counted."""

    def __init__(
        self, parsed: list[Parsed], *, batch_id: int, atomic: bool, counted: CountOnce
    ) -> None:
        self.batch_id = batch_id
        self.atomic = atomic
        self.refused: dict[int, RefusedItem] = {
            p.index: p for p in parsed if isinstance(p, RefusedItem)
        }
        self.item_count = len(parsed)
        self.blocked: list[_Item] = []
        self.totals: dict[Pair, PairTotals] = {}
        # Items sharing a decision share its audit details, checked and encoded once.
        self.audit_details: dict[tuple[str, int, tuple[str, ...]], str] = {}
        # What this attempt counted, by item index, under the batch's marker `counted`: every
        # attempt of the batch names the same one, so a retry counts nothing twice
        # (`DailyLimits.consume_many`).
        self.counted = counted
        self.usages: dict[int, Usage] = {}

    def refuse(self, item: ParsedItem, code: str, field: str | None, message: str) -> None:
        self.refused[item.index] = RefusedItem(
            index=item.index,
            reference=item.reference,
            error=batch_wire.ItemError(code=code, field=field, message=message[:500]),
        )


class Batches:
    """What accepting a batch needs: its public attributes are its module's dependencies."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        writer: BatchWriter,
        redis: Redis,
        ledger: Ledger,
        compliance: ComplianceCheck,
        limits: DailyLimits,
        pricing: PricingCache,
        quoter: Quoter,
    ) -> None:
        self.pool = pool
        self.writer = writer
        self.redis = redis
        self.ledger = ledger
        self.compliance = compliance
        self.limits = limits
        self.pricing = pricing
        self.quoter = quoter

    async def accept(
        self, principal: Principal, *, batch_id: int, atomic: bool, parsed: list[Parsed]
    ) -> batch_wire.Batch:
        """Accept the batch: see `accept_batch`."""
        return await accept_batch(self, principal, batch_id=batch_id, atomic=atomic, parsed=parsed)


async def accept_batch(
    batches: Batches,
    principal: Principal,
    *,
    batch_id: int,
    atomic: bool,
    parsed: list[Parsed],
) -> batch_wire.Batch:
    """Accept the batch (see the module docstring); the view answered to the client."""
    counted = batches.limits.batch_marker(tenant_id=principal.tenant_id, batch_id=batch_id)
    acceptance = _Acceptance(parsed, batch_id=batch_id, atomic=atomic, counted=counted)
    items = await _check_items(batches, principal, acceptance, parsed)
    terms = await batches.pricing.terms(principal.tenant_id)
    prices = await _lock_pairs(batches, principal, acceptance, pricing=terms.pricing, items=items)
    items = _net(batches, acceptance, prices, terms.pricing.fee_bps, items)
    try:
        items = await _screen(batches, principal, acceptance, terms=terms, items=items)
        # Screening refused some items: the pairs' totals are netted again without them.
        items = _net(batches, acceptance, prices, terms.pricing.fee_bps, items)
        if atomic and acceptance.refused:
            await _audit_blocks(batches, acceptance)
            raise _atomic_refusal(acceptance)
        items, pairs = await _convert(batches, principal, acceptance, prices=prices, items=items)
        # The items' holds go to the ledger while this process builds the batch's rows:
        # the two run on different cores, and neither needs the other's result until both
        # are done (a hold that fails is left to the repair, as below).
        holding = asyncio.ensure_future(_hold_items(batches, principal, batch_id, items))
        try:
            record, view = await asyncio.to_thread(
                _record, principal, acceptance, prices=prices, pairs=pairs, items=items
            )
        finally:
            await holding
        outcome = await record_batch(batches.pool, record)
    except BaseException:
        await batches.limits.give_back_many(
            tenant_id=principal.tenant_id, usages=acceptance.usages, once=counted
        )
        raise
    if outcome == "abandoned":
        # The repair undid an earlier attempt and gave its count back. This attempt held
        # its items again (ids derive from the batch: a hold the repair voided answers
        # `exists`, one the earlier attempt never made is made now, possibly after the
        # repair looked): it voids them all, so nothing of it stays held or counted.
        await _void_holds(batches, principal, batch_id, items)
        await batches.limits.give_back_many(
            tenant_id=principal.tenant_id, usages=acceptance.usages, once=counted
        )
        raise _abandoned()
    refused = _counted_but_not_admitted(acceptance, items)
    await batches.limits.give_back_many(tenant_id=principal.tenant_id, usages=refused, once=counted)
    return view


def _abandoned() -> BatchAbandoned:
    return BatchAbandoned(
        "an earlier attempt of this batch was undone after a failure; submit it again "
        "with a new Idempotency-Key"
    )


def _counted_but_not_admitted(acceptance: _Acceptance, items: list[_Item]) -> dict[int, Usage]:
    """What this attempt counted for items it did not admit in the end (refused after the
    count, or in a pair that could not be funded): the count to give back."""
    admitted = {item.parsed.index for item in items if item.usage is not None}
    return {index: usage for index, usage in acceptance.usages.items() if index not in admitted}


async def _check_items(
    batches: Batches, principal: Principal, acceptance: _Acceptance, parsed: list[Parsed]
) -> list[_Item]:
    """Currencies and recipients, item by item (recipients read once for the batch)."""
    candidates = [p for p in parsed if isinstance(p, ParsedItem)]
    recipients = await fetch_recipients(
        batches.pool,
        batches.redis,
        tenant_id=principal.tenant_id,
        region=principal.compliance_region,
        recipient_ids={p.recipient_id for p in candidates},
    )
    currencies = batches.ledger.currencies
    items: list[_Item] = []
    for candidate in candidates:
        try:
            currencies.get(candidate.source_currency)
        except LedgerError as error:
            acceptance.refuse(candidate, error.code, "source_currency", error.detail)
            continue
        try:
            currencies.get(candidate.target_currency)
        except LedgerError as error:
            acceptance.refuse(candidate, error.code, "target_currency", error.detail)
            continue
        recipient = recipients.get(candidate.recipient_id)
        problem = _recipient_problem(candidate, recipient)
        if problem is not None:
            acceptance.refuse(candidate, *problem)
            continue
        assert recipient is not None  # Checked by _recipient_problem.
        items.append(_Item(parsed=candidate, recipient=recipient))
    return items


def _recipient_problem(
    item: ParsedItem, recipient: RecipientRecord | None
) -> tuple[str, str, str] | None:
    if recipient is None:
        return (
            "unknown_recipient",
            "recipient_id",
            f"no recipient {encode_id('rcp', item.recipient_id)}",
        )
    if recipient.status != "active":
        return ("recipient_frozen", "recipient_id", "this recipient is frozen")
    if recipient.currency != item.target_currency:
        return (
            "recipient_currency_mismatch",
            "target_currency",
            f"the recipient is paid in {recipient.currency}",
        )
    try:
        corridor_for(country=recipient.country, currency=recipient.currency)
    except UnsupportedCorridor as error:
        return ("unsupported_corridor", "recipient_id", str(error))
    return None


async def _lock_pairs(
    batches: Batches,
    principal: Principal,
    acceptance: _Acceptance,
    *,
    pricing: Any,
    items: list[_Item],
) -> dict[Pair, PairPrice]:
    """One rate lock per pair; a pair that cannot be quoted refuses its items."""
    by_pair: dict[Pair, list[_Item]] = defaultdict(list)
    for item in items:
        by_pair[item.pair].append(item)
    prices: dict[Pair, PairPrice] = {}
    for pair, members in by_pair.items():
        try:
            prices[pair] = await lock_pair(
                batches.quoter,
                tenant_id=principal.tenant_id,
                batch_id=acceptance.batch_id,
                pricing=pricing,
                pair=pair,
                items=[m.parsed for m in members],
            )
        except DomainError as error:
            for member in members:
                acceptance.refuse(member.parsed, error.code, None, error.detail)
    return prices


def _net(
    batches: Batches,
    acceptance: _Acceptance,
    prices: dict[Pair, PairPrice],
    fee_bps: int,
    items: list[_Item],
) -> list[_Item]:
    """Each live item's exact share of its pair's totals; the too small are refused."""
    by_pair: dict[Pair, list[_Item]] = defaultdict(list)
    for item in items:
        if item.pair in prices:
            by_pair[item.pair].append(item)
    live: list[_Item] = []
    for pair, members in by_pair.items():
        amounts, refused = net_items(
            batches.ledger.currencies,
            price=prices[pair],
            fee_bps=fee_bps,
            items=[m.parsed for m in members],
        )
        for parsed, error in refused:
            acceptance.refuse(parsed, error.code, None, error.detail)
        if amounts is None:
            continue
        if _pair_too_large(amounts):
            for member in members:
                acceptance.refuse(
                    member.parsed,
                    "invalid_amount",
                    None,
                    f"the pair's total exceeds {amount_minor_max} minor units; split the batch",
                )
            continue
        acceptance.totals[pair] = amounts.netting.totals
        by_index = {m.parsed.index: m for m in members}
        for index, share in zip(amounts.indices, amounts.netting.items, strict=True):
            by_index[index].amounts = share
            live.append(by_index[index])
    return sorted(live, key=lambda item: item.parsed.index)


def _pair_too_large(amounts: PairAmounts) -> bool:
    totals = amounts.netting.totals
    return max(totals.source_amount_minor, totals.fee_minor, totals.target_amount_minor) > (
        amount_minor_max
    )


async def _screen(
    batches: Batches,
    principal: Principal,
    acceptance: _Acceptance,
    *,
    terms: Any,
    items: list[_Item],
) -> list[_Item]:
    """Daily limits for all items in one step (under the batch's marker), then a compliance
    decision per item; the acceptance's `usages` gathers what was counted, by item index."""
    valued = await _valued_in_usd(batches, acceptance, terms=terms, items=items)
    items = [item for item, _ in valued]
    usd = [amount for _, amount in valued]
    decided = await batches.limits.consume_many(
        tenant_id=principal.tenant_id,
        usd_minor={item.parsed.index: amount for item, amount in zip(items, usd, strict=True)},
        daily_limit_usd_minor=terms.daily_limit_usd_minor,
        once=acceptance.counted,
    )
    screening = BatchScreening(batches.compliance)
    live: list[_Item] = []
    for item, amount, usage in zip(items, usd, decided, strict=True):
        if usage is None:
            acceptance.refuse(
                item.parsed,
                "daily_limit_exceeded",
                None,
                f"today's volume would exceed the daily limit of "
                f"{terms.daily_limit_usd_minor} USD minor units",
            )
            continue
        acceptance.usages[item.parsed.index] = usage
        item.usage = usage
        item.decision = await screening.decide(
            recipient_id=item.recipient.id,
            facts=payout_facts(
                tenant_id=principal.tenant_id,
                tier=terms.tier,
                source_currency=item.parsed.source_currency,
                target_currency=item.parsed.target_currency,
                amount_usd_minor=amount,
                daily_limit_usd_minor=terms.daily_limit_usd_minor,
                recipient=item.recipient,
                payouts_last_hour=usage.payouts_last_hour,
            ),
        )
        if item.decision.outcome == "block":
            acceptance.refuse(
                item.parsed, "compliance_blocked", None, "compliance refused this payout"
            )
            acceptance.blocked.append(item)
            item.usage = None
            continue
        live.append(item)
    return live


async def _valued_in_usd(
    batches: Batches, acceptance: _Acceptance, *, terms: Any, items: list[_Item]
) -> list[tuple[_Item, int]]:
    """Each item with what it counts against the daily limit, in US cents; an item whose
    currency has no usable rate is refused as `rate_unavailable`, and one worth more than a
    daily count can hold as over any daily limit (a limit is at most 10**15 US cents)."""
    to_usd: dict[str, Decimal] = {}
    rates = await batches.quoter.book.snapshot()
    for currency in sorted({item.parsed.source_currency for item in items}):
        try:
            to_usd[currency] = rates.mid(currency, "USD").rate
        except (RateUnavailable, RateStale) as error:
            for item in items:
                if item.parsed.source_currency == currency:
                    acceptance.refuse(item.parsed, "rate_unavailable", None, str(error))
    valued: list[tuple[_Item, int]] = []
    for item in items:
        if item.parsed.source_currency not in to_usd:
            continue
        amount = _usd_minor(batches, item, to_usd[item.parsed.source_currency])
        if amount > usd_minor_max:
            acceptance.refuse(
                item.parsed,
                "daily_limit_exceeded",
                None,
                f"this payout alone exceeds the daily limit of "
                f"{terms.daily_limit_usd_minor} USD minor units",
            )
        else:
            valued.append((item, amount))
    return valued


def _usd_minor(batches: Batches, item: _Item, rate: Decimal) -> int:
    """The item's source amount and fee in US cents, rounded up (as single payouts count)."""
    ensure(item.amounts is not None, "an item is netted before it is screened")
    assert item.amounts is not None
    return usd_equivalent_minor(
        amount_minor=item.amounts.source_amount_minor + item.amounts.fee_minor,
        currency=batches.ledger.currencies.get(item.parsed.source_currency),
        to_usd_mid=rate,
    )


async def _convert(
    batches: Batches,
    principal: Principal,
    acceptance: _Acceptance,
    *,
    prices: dict[Pair, PairPrice],
    items: list[_Item],
) -> tuple[list[_Item], dict[Pair, NettedPair]]:
    """Convert each pair once: a pair that cannot be funded refuses its items, or the whole
    batch when atomic. The items of the funded pairs, and the pairs."""
    netting = Netting(batches.ledger)
    by_pair: dict[Pair, list[_Item]] = defaultdict(list)
    for item in items:
        by_pair[item.pair].append(item)
    pairs = {
        pair: _netted_pair(principal, acceptance.batch_id, pair, acceptance.totals[pair], members)
        for pair, members in by_pair.items()
    }
    if not pairs:
        return [], {}
    await netting.open_clearing_accounts(principal.tenant_id, {pair[0] for pair in pairs})
    chains = [netting.pair_chain(totals) for totals in pairs.values()]
    if acceptance.atomic:
        (error,) = await netting.submit_chains([linked([t for c in chains for t in c])])
        if error is not None:
            raise error
    else:
        outcomes = await netting.submit_chains([linked(chain) for chain in chains])
        for pair, error in zip(list(pairs), outcomes, strict=True):
            if error is not None:
                for member in by_pair[pair]:
                    acceptance.refuse(member.parsed, error.code, None, error.detail)
                del pairs[pair]
    return [item for item in items if item.pair in pairs], pairs


async def _hold_items(
    batches: Batches, principal: Principal, batch_id: int, funded: list[_Item]
) -> None:
    """Hold every funded item on its own, drawing on its pair's conversion."""
    netting = Netting(batches.ledger)
    holds = [netting.item_reservation(_netted_item(principal, batch_id, item)) for item in funded]
    for error in await netting.submit_chains(holds):
        if error is not None:
            # The pair chains applied and an item's hold, drawing on them, did not: not an
            # answer to give the client. The repair settles the batch (module docstring).
            raise error


async def _void_holds(
    batches: Batches, principal: Principal, batch_id: int, funded: list[_Item]
) -> None:
    """Void the funded items' holds, giving nothing back: the batch was undone, its pair
    chains reversed by the repair (`gateway.batches.repair`, which builds the same voids)."""
    netting = Netting(batches.ledger)
    voids = [
        void
        for item in funded
        for void in netting.item_hold_voids(_netted_item(principal, batch_id, item))
    ]
    for error in await netting.submit_chains([[void] for void in voids]):
        if error is not None:
            raise error


def _netted_pair(
    principal: Principal, batch_id: int, pair: Pair, totals: PairTotals, members: list[_Item]
) -> NettedPair:
    shares = [m.amounts for m in members if m.amounts is not None]
    ensure(len(shares) == len(members), "every held item has its share")
    ensure(
        sum(a.source_amount_minor for a in shares) == totals.source_amount_minor
        and sum(a.fee_minor for a in shares) == totals.fee_minor
        and sum(a.target_amount_minor for a in shares) == totals.target_amount_minor,
        "the items of a pair add up to its conversion chain",
    )
    return NettedPair(
        batch_id=batch_id,
        tenant_id=principal.tenant_id,
        source_currency=pair[0],
        target_currency=pair[1],
        source_amount_minor=totals.source_amount_minor,
        fee_minor=totals.fee_minor,
        target_amount_minor=totals.target_amount_minor,
    )


def _netted_item(principal: Principal, batch_id: int, item: _Item) -> NettedItem:
    ensure(item.amounts is not None, "a held item has its share")
    assert item.amounts is not None
    return NettedItem(
        item_id=item_id(batch_id=batch_id, index=item.parsed.index),
        tenant_id=principal.tenant_id,
        source_currency=item.parsed.source_currency,
        source_amount_minor=item.amounts.source_amount_minor,
        fee_minor=item.amounts.fee_minor,
        target_currency=item.parsed.target_currency,
        target_amount_minor=item.amounts.target_amount_minor,
    )


def _atomic_refusal(acceptance: _Acceptance) -> BatchRejected:
    refused = sorted(acceptance.refused.values(), key=lambda r: r.index)
    return BatchRejected(
        f"{len(refused)} of {acceptance.item_count} items were refused; an atomic batch "
        "moves nothing unless every item can go",
        items=[
            (
                f"items[{r.index}]" + (f".{r.error.field}" if r.error.field else ""),
                f"{r.error.code}: {r.error.message}",
            )
            for r in refused
        ],
    )


async def _audit_blocks(batches: Batches, acceptance: _Acceptance) -> None:
    """An atomic batch refused records nothing but its compliance blocks' audit records."""
    rows = [_audit_row(acceptance, item.recipient.tenant_id, item) for item in acceptance.blocked]
    if rows:
        await batches.writer.write_together([(outbox_insert, row) for row in rows])


def _audit_row(acceptance: _Acceptance, tenant_id: int, item: _Item) -> tuple[Any, ...]:
    """The compliance decision's audit record, chained later by `compliance.audit.outbox`."""
    decision = item.decision
    ensure(decision is not None, "an audited item was decided")
    assert decision is not None
    batch_id = acceptance.batch_id
    transfer = uuid.UUID(int=item_id(batch_id=batch_id, index=item.parsed.index))
    record_id = event_id(transfer, "audit.compliance")
    action = f"compliance.{decision.outcome}"
    target = f"transfer:{transfer}"
    key = (decision.outcome, decision.score, decision.reasons)
    details = acceptance.audit_details.get(key)
    if details is None:
        row = outbox_row(
            record_id=record_id,
            actor="compliance",
            action=action,
            target=target,
            details={
                "tenant_id": tenant_id,
                "batch_id": str(uuid.UUID(int=batch_id)),
                "score": decision.score,
                "reasons": decision.reasons,
            },
        )
        acceptance.audit_details[key] = row[4]
        return row
    # The same details, already checked; the target has the same fixed shape each time.
    return (record_id, "compliance", action, target, details)


class _BatchRows:
    """The rows of an accepted batch, by table, and each item's result, as `_record` gathers
    them."""

    def __init__(self) -> None:
        self.transfers: list[tuple[Any, ...]] = []
        self.events: list[tuple[Any, ...]] = []
        self.cases: list[tuple[Any, ...]] = []
        self.audit: list[tuple[Any, ...]] = []
        self.errors: list[tuple[Any, ...]] = []
        self.results: list[batch_wire.BatchItemResult] = []


def _record(
    principal: Principal,
    acceptance: _Acceptance,
    *,
    prices: dict[Pair, PairPrice],
    pairs: dict[Pair, NettedPair],
    items: list[_Item],
) -> tuple[BatchRecord, batch_wire.Batch]:
    """The rows of the accepted batch and the view answered to the client."""
    now = datetime.datetime.now(tz=datetime.UTC)
    batch_uuid = uuid.UUID(int=acceptance.batch_id)
    rows = _BatchRows()
    _add_accepted(
        rows, principal, acceptance, batch_uuid=batch_uuid, prices=prices, items=items, now=now
    )
    for item in acceptance.blocked:
        rows.audit.append(_audit_row(acceptance, principal.tenant_id, item))
    _add_refused(rows, principal, acceptance, batch_uuid=batch_uuid)
    batch = BatchRow(
        id=batch_uuid,
        compliance_region=principal.compliance_region,
        tenant_id=principal.tenant_id,
        status="processing",
        atomic=acceptance.atomic,
        item_count=acceptance.item_count,
        accepted_count=len(items),
        nettings=_nettings(prices, pairs, items),
        created_at=now,
        completed_at=None,
    )
    record = BatchRecord(
        batch=batch,
        transfers=rows.transfers,
        events=rows.events,
        cases=rows.cases,
        audit=rows.audit,
        errors=rows.errors,
    )
    results = sorted(rows.results, key=lambda r: r.index)
    return record, batch_view(batch, results, next_cursor=None)


def _add_accepted(
    rows: _BatchRows,
    principal: Principal,
    acceptance: _Acceptance,
    *,
    batch_uuid: uuid.UUID,
    prices: dict[Pair, PairPrice],
    items: list[_Item],
    now: datetime.datetime,
) -> None:
    """Each accepted item's transfer, its first event, its case when it is under review and
    its decision's audit record; and its result."""
    for item in items:
        row = _transfer_row(principal, batch_uuid, prices[item.pair], item, now)
        rows.transfers.append(tuple(getattr(row, c) for c in transfer_columns))
        view = transfer_view(row)
        rows.events.append(
            (
                event_id(row.id, f"transfer.{row.status}"),
                principal.tenant_id,
                f"transfer.{row.status}",
                row.id,
                _view_encoder.encode(view).decode(),
            )
        )
        decision = item.decision
        ensure(decision is not None, "an accepted item was decided")
        assert decision is not None
        if decision.outcome == "review":
            rows.cases.append(
                (
                    event_id(row.id, "case"),
                    principal.compliance_region,
                    principal.tenant_id,
                    row.id,
                    decision.score,
                    json.dumps(list(decision.reasons)),
                )
            )
        rows.audit.append(_audit_row(acceptance, principal.tenant_id, item))
        rows.results.append(_accepted_result(row, view))


def _add_refused(
    rows: _BatchRows, principal: Principal, acceptance: _Acceptance, *, batch_uuid: uuid.UUID
) -> None:
    """Each refused item's error row, and its result."""
    for refused in acceptance.refused.values():
        rows.errors.append(
            (
                principal.compliance_region,
                batch_uuid,
                principal.tenant_id,
                refused.index,
                refused.error.code,
                refused.error.field,
                refused.error.message,
                refused.reference,
            )
        )
        rows.results.append(
            batch_wire.BatchItemResult(
                index=refused.index,
                status="rejected",
                reference=refused.reference,
                error=refused.error,
            )
        )


def _nettings(
    prices: dict[Pair, PairPrice], pairs: dict[Pair, NettedPair], items: list[_Item]
) -> list[batch_wire.BatchNetting]:
    """Each converted pair as the batch shows it: its quote, rate, totals and item count."""
    return [
        batch_wire.BatchNetting(
            source_currency=pair[0],
            target_currency=pair[1],
            quote_id=encode_id("quote", prices[pair].quote.id),
            rate=prices[pair].quote.rate,
            source_amount=totals.source_amount_minor,
            fee_amount=totals.fee_minor,
            target_amount=totals.target_amount_minor,
            item_count=sum(1 for item in items if item.pair == pair),
        )
        for pair, totals in pairs.items()
    ]


def _transfer_row(
    principal: Principal,
    batch_uuid: uuid.UUID,
    price: PairPrice,
    item: _Item,
    now: datetime.datetime,
) -> TransferRow:
    amounts = item.amounts
    ensure(amounts is not None and item.decision is not None, "an accepted item is complete")
    assert amounts is not None
    assert item.decision is not None
    recipient = item.recipient
    corridor = corridor_for(country=recipient.country, currency=recipient.currency)
    index = item.parsed.index
    return TransferRow(
        id=uuid.UUID(int=item_id(batch_id=batch_uuid.int, index=index)),
        compliance_region=principal.compliance_region,
        tenant_id=principal.tenant_id,
        quote_id=uuid.UUID(int=price.quote.id),
        recipient_id=uuid.UUID(int=recipient.id),
        reference=item.parsed.reference,
        source_currency=item.parsed.source_currency,
        source_amount_minor=amounts.source_amount_minor,
        fee_minor=amounts.fee_minor,
        target_currency=item.parsed.target_currency,
        target_amount_minor=amounts.target_amount_minor,
        rate=price.quote.rate,
        rail=choose_rail(corridor, amount_minor=amounts.target_amount_minor).value,
        status="in_review" if item.decision.outcome == "review" else "processing",
        attempt=0,
        next_attempt_at=now,
        failure_code=None,
        created_at=now,
        updated_at=now,
        batch_id=batch_uuid,
        batch_item_index=index,
    )


def _accepted_result(row: TransferRow, view: Any) -> batch_wire.BatchItemResult:
    ensure(row.batch_item_index is not None, "a batch item has its index")
    assert row.batch_item_index is not None
    return batch_wire.BatchItemResult(
        index=row.batch_item_index,
        status=view.status,
        transfer_id=view.id,
        reference=row.reference,
        source_currency=row.source_currency,
        target_currency=row.target_currency,
        source_amount=row.source_amount_minor,
        fee_amount=row.fee_minor,
        target_amount=row.target_amount_minor,
        rail=row.rail,
    )


def batch_view(
    batch: BatchRow,
    items: list[batch_wire.BatchItemResult],
    *,
    next_cursor: str | None,
    counts: dict[str, int] | None = None,
) -> batch_wire.Batch:
    """The API view of a batch; counts from `items` when they are all of them."""
    if counts is None:
        counts = defaultdict(int)
        for result in items:
            counts[result.status] += 1
    return batch_wire.Batch(
        id=encode_id("batch", batch.id.int),
        status="completed" if batch.status == "completed" else "processing",
        atomic=batch.atomic,
        item_count=batch.item_count,
        accepted_count=batch.accepted_count,
        rejected_count=batch.item_count - batch.accepted_count,
        counts=dict(counts),
        nettings=batch.nettings,
        items=items,
        next_cursor=next_cursor,
        created_at=batch.created_at,
        completed_at=batch.completed_at,
    )
