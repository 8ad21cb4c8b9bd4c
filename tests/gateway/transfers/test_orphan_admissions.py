"""Admissions whose payout never reached the ledger get their count and quote back.

Against real Postgres, Redis and the embedded ledger, five transfers are admitted by the
admission script a while ago: one whose gateway died before the ledger, two reserved in the
ledger (one in two currencies, one in the same currency, whose chain has no source leg), one
retried recently with its Idempotency-Key (admitted again, so its own later
entry decides), and one whose request gave its admission back itself. Two passes of the
reconciler at once give back exactly the first, once: its quote is usable again by another
transfer and the day counts only what the others still hold; a pass that reads the same
seconds again gives back nothing more. The first pass on a fresh Redis starts no earlier than the
admissions it could still find.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from pathlib import Path

import msgspec

from compliance.limits import Usage
from fx.quotes import LockedQuote
from gateway.jobs.reconciler import reconcile_once
from gateway.jobs.worker import orphan_admissions, reconciliation
from gateway.runtime import Runtime
from gateway.transfers.admission import Outcome
from gateway.transfers.orphan_admissions import release_orphan_admissions, seconds_per_pass_max
from gateway.transfers.recipients import recipient_cache_key
from gateway.transfers.service import payout_for
from ledger.payouts import Payouts
from ledger.transfers import new_object_id
from tests.fx.test_quotes import _quote as quote_for
from tests.gateway.transfers.test_admission import idr_recipient
from tests.postgres import migrated_runtime

tenant_id = 4_321
limit_usd_minor = 10**12
usd_minor = 1_000


class Admissions:
    """The tenant's quotes, its published recipient and the admission script."""

    def __init__(self, services: Runtime) -> None:
        self.services = services
        self.recipient_id = new_object_id()

    async def publish_recipient(self) -> None:
        record = idr_recipient(self.recipient_id, tenant_id=tenant_id)
        key = recipient_cache_key(tenant_id, self.recipient_id)
        await self.services.redis.set(key, msgspec.json.encode(record))

    async def quote(self) -> LockedQuote:
        quote = msgspec.structs.replace(
            quote_for(tenant_id=tenant_id, minutes=60), usd_equivalent_minor=usd_minor
        )
        return await self.services.quoter.store.save(quote)

    async def admit(self, quote: LockedQuote, transfer_id: int, moment: float) -> None:
        reply = await self.services.admission.run(
            tenant_id=tenant_id,
            transfer_id=transfer_id,
            quote_id=quote.id,
            recipient_id=self.recipient_id,
            daily_limit_usd_minor=limit_usd_minor,
            usd_minor=None,
            moment=datetime.datetime.fromtimestamp(moment, tz=datetime.UTC),
        )
        assert reply[0] == Outcome.admitted, reply

    async def used_by(self, quote: LockedQuote) -> bytes | str | None:
        record = self.services.quoter.store.record_key(tenant_id=tenant_id, quote_id=quote.id)
        used: bytes | str | None = await self.services.redis.hget(record, "used_by")
        return used

    async def day_usd_minor(self, moment: float) -> int:
        day, _ = self.services.limits.counter_keys(
            tenant_id=tenant_id, moment=datetime.datetime.fromtimestamp(moment, tz=datetime.UTC)
        )
        return int(await self.services.redis.get(day) or 0)


async def _services(empty_database: str, tmp_path: Path) -> Runtime:
    return await migrated_runtime(
        empty_database,
        tmp_path,
        {"KOVRA_CURRENCIES": "EUR,IDR", "KOVRA_RECONCILE_AFTER_SECONDS": "1"},
    )


async def test_only_an_admission_without_a_payout_is_given_back(
    empty_database: str, tmp_path: Path
) -> None:
    services = await _services(empty_database, tmp_path)
    try:
        admissions = Admissions(services)
        await admissions.publish_recipient()
        await services.ledger.open_tenant_accounts(tenant_id)
        await services.ledger.deposit(
            tenant_id=tenant_id, deposit_id=new_object_id(), currency_code="EUR", amount_minor=10**6
        )
        await services.ledger.fund_liquidity(
            funding_id=new_object_id(), currency_code="IDR", amount_minor=10**12
        )
        now = time.time()
        then = now - 20
        died, reserved, reserved_in_eur, retried, gave_back = (new_object_id() for _ in range(5))
        everyone = (died, reserved, reserved_in_eur, retried, gave_back)
        quotes = {transfer: await admissions.quote() for transfer in everyone}
        for transfer, quote in quotes.items():
            await admissions.admit(quote, transfer, then)
        await admissions.admit(quotes[retried], retried, now)  # The keyed retry, just now.
        await Payouts(services.ledger).reserve(
            payout_for(quotes[reserved], tenant_id=tenant_id, transfer_id=reserved)
        )
        # A same-currency payout's chain has no source leg, only the target leg every
        # payout has.
        same_currency = msgspec.structs.replace(
            payout_for(quotes[reserved_in_eur], tenant_id=tenant_id, transfer_id=reserved_in_eur),
            target_currency="EUR",
            target_amount_minor=quotes[reserved_in_eur].source_amount,
        )
        await Payouts(services.ledger).reserve(same_currency)
        # The request's own give-back, as `gateway.transfers.service` does it.
        await services.limits.give_back(
            tenant_id=tenant_id,
            usage=Usage(
                usd_minor=usd_minor,
                counted_at=datetime.datetime.fromtimestamp(then, tz=datetime.UTC),
                day_usd_minor=0,
                payouts_last_hour=0,
            ),
            once=services.admission.marker(tenant_id=tenant_id, quote_id=quotes[gave_back].id),
        )
        await services.quoter.store.release(
            tenant_id=tenant_id, quote_id=quotes[gave_back].id, consumer_id=gave_back
        )
        assert await admissions.day_usd_minor(then) == 4 * usd_minor

        # Two workers' passes at once: the admission is given back once.
        passes = [
            release_orphan_admissions(orphan_admissions(services), now_seconds=now)
            for _ in range(2)
        ]
        assert sorted(await asyncio.gather(*passes)) == [0, 1]
        assert await admissions.day_usd_minor(then) == 3 * usd_minor  # Reserved and retried.
        assert await admissions.used_by(quotes[died]) is None
        for kept in (reserved, reserved_in_eur, retried):
            assert await admissions.used_by(quotes[kept]) == f"{kept:032x}".encode()
        assert await services.admission.quote_of(transfer_id=died) is None
        # Nothing is given back twice, even by a pass that reads the same seconds again; the
        # quote given back is usable by another transfer, which counts.
        await services.redis.delete(services.admission.admitted_watermark_key)
        assert await release_orphan_admissions(orphan_admissions(services), now_seconds=now) == 0
        await admissions.admit(quotes[died], new_object_id(), now)
        assert await reconcile_once(reconciliation(services)) == 0
        assert await admissions.day_usd_minor(then) == 4 * usd_minor
    finally:
        await services.close()


async def test_a_first_pass_reads_no_further_back_than_admissions_live(
    empty_database: str, tmp_path: Path
) -> None:
    """With no watermark, a pass starts at the oldest second whose list can still exist;
    each pass reads at most `seconds_per_pass_max` seconds and moves the watermark."""
    services = await _services(empty_database, tmp_path)
    try:
        now = 2_000_000_000.0
        assert await release_orphan_admissions(orphan_admissions(services), now_seconds=now) == 0
        watermark = await _watermark(services)
        cutoff = int(now) - services.settings.reconcile_after_seconds - 1
        oldest = cutoff - services.admission.remember_seconds
        assert watermark == min(cutoff, oldest + seconds_per_pass_max - 1)
        assert await release_orphan_admissions(orphan_admissions(services), now_seconds=now) == 0
        assert await _watermark(services) == cutoff
    finally:
        await services.close()


async def _watermark(services: Runtime) -> int:
    stored = await services.redis.get(services.admission.admitted_watermark_key)
    assert stored is not None
    return int(stored)
