"""One script admits a transfer against the real local Redis: it checks the recipient, then the
quote, then the currencies, then the daily limit, in that order, and a refusal at any step
changes nothing (the quote stays usable, nothing is counted). Admitted, the quote is used by
that transfer alone, the payout is counted once, however often the same transfer is admitted
again, and the transfer's quote and admission moment are remembered, and the transfer listed
under its second, for the reconciler; a quote without its USD
equivalent is counted at the amount the caller values it at."""

from __future__ import annotations

import datetime

import msgspec
import pytest
from redis.asyncio import Redis

from compliance.limits import DailyLimits
from fx.quotes import LockedQuote, QuoteStore, quote_expired, quote_unknown, quote_used
from gateway.transfers.admission import (
    Outcome,
    TransferAdmission,
    payout_quote_margin_seconds,
)
from gateway.transfers.recipients import RecipientRecord, recipient_cache_key
from ledger.transfers import new_object_id
from tests.fx.test_quotes import _quote as quote_for

tenant_id = 77
limit_usd_minor = 10_000
now = datetime.datetime.now(tz=datetime.UTC)


def idr_recipient(
    recipient_id: int, *, tenant_id: int, status: str = "active", name: str = "PT Maju"
) -> RecipientRecord:
    """A recipient paid in IDR in Indonesia, as the recipients' cache publishes it."""
    return RecipientRecord(
        id=recipient_id,
        tenant_id=tenant_id,
        name=name,
        country="ID",
        currency="IDR",
        status=status,
        bank_details={"bank_code": "014", "account_number": "1234567890"},
        created_at=now,
    )


class Setting:
    """A tenant's quote and recipient under a private namespace, and the admission."""

    def __init__(self, redis: Redis, namespace: str) -> None:
        self.redis = redis
        self.namespace = namespace
        self.quotes = QuoteStore(redis, namespace=namespace)
        self.limits = DailyLimits(redis, namespace=namespace)
        self.admission = TransferAdmission(
            redis, quotes=self.quotes, limits=self.limits, namespace=namespace
        )
        self.recipient_id = new_object_id()

    async def quote(
        self, *, usd_minor: int | None = 1_093, minutes: int = 10, currency: str = "IDR"
    ) -> LockedQuote:
        built = quote_for(tenant_id=tenant_id, minutes=minutes)
        return await self.quotes.save(
            msgspec.structs.replace(built, target_currency=currency, usd_equivalent_minor=usd_minor)
        )

    async def publish_recipient(self, *, status: str = "active", name: str = "PT Maju") -> None:
        record = idr_recipient(self.recipient_id, tenant_id=tenant_id, status=status, name=name)
        key = recipient_cache_key(tenant_id, self.recipient_id, self.namespace)
        await self.redis.set(key, msgspec.json.encode(record))

    async def admit(
        self, quote: LockedQuote, *, transfer_id: int, usd_minor: int | None = None
    ) -> list[object]:
        return await self.admission.run(
            tenant_id=tenant_id,
            transfer_id=transfer_id,
            quote_id=quote.id,
            recipient_id=self.recipient_id,
            daily_limit_usd_minor=limit_usd_minor,
            usd_minor=usd_minor,
            moment=now,
        )

    async def unchanged(self, quote: LockedQuote) -> bool:
        """Nothing was taken: the quote is not used, the day counts nothing."""
        record = self.quotes.record_key(tenant_id=tenant_id, quote_id=quote.id)
        day, hour = self.limits.counter_keys(tenant_id=tenant_id, moment=now)
        return (
            await self.redis.hget(record, "used_by") is None
            and await self.redis.hget(record, "daily_limit_counted") is None
            and await self.redis.get(day) is None
            and await self.redis.get(hour) is None
        )

    async def day_usd_minor(self) -> int:
        day, _ = self.limits.counter_keys(tenant_id=tenant_id, moment=now)
        return int(await self.redis.get(day) or 0)


@pytest.fixture
def setting(redis_client: Redis, namespace: str) -> Setting:
    return Setting(redis_client, namespace)


async def test_admitted_uses_the_quote_and_counts_once(setting: Setting) -> None:
    await setting.publish_recipient(name='Quote "status":"frozen" Ltd')
    quote = await setting.quote()
    transfer_id = new_object_id()
    reply = await setting.admit(quote, transfer_id=transfer_id)
    assert reply[0] == Outcome.admitted
    assert msgspec.json.decode(reply[1], type=LockedQuote) == quote  # type: ignore[call-overload]
    assert (reply[3], reply[4], reply[5], int(reply[6])) == (1, 1_093, 1, 1_093)  # type: ignore[call-overload]
    again = await setting.admit(quote, transfer_id=transfer_id)  # A retry of the same transfer.
    assert (again[0], again[3], again[4]) == (Outcome.admitted, 2, 1_093)
    assert await setting.day_usd_minor() == 1_093
    other = await setting.admit(quote, transfer_id=new_object_id())
    assert other == [Outcome.quote_refused, quote_used]
    # The reconciler finds the quote of a transfer whose row never came, for a while.
    assert await setting.admission.quote_of(transfer_id=transfer_id) == quote.id
    key = f"{setting.namespace}:transfer-quote:{transfer_id:032x}"
    assert 0 < await setting.redis.ttl(key) <= 30 + payout_quote_margin_seconds
    admitted_ms = int(now.timestamp() * 1000)
    assert await setting.redis.get(key) == f"{quote.id:032x}:{admitted_ms}".encode()
    # Listed under its second, once per admission, for the orphan admissions' pass.
    listed = setting.admission.admitted_key(admitted_ms // 1000)
    entry = f"{tenant_id}:{transfer_id:032x}".encode()
    assert await setting.redis.lrange(listed, 0, -1) == [entry, entry]
    assert 0 < await setting.redis.ttl(listed) <= 30 + payout_quote_margin_seconds
    assert await setting.admission.quote_of(transfer_id=new_object_id()) is None


async def test_an_unpublished_recipient_is_asked_for_first(setting: Setting) -> None:
    quote = await setting.quote(minutes=-1)  # Expired too: the recipient's answer comes first.
    assert await setting.admit(quote, transfer_id=new_object_id()) == [
        Outcome.recipient_unpublished
    ]
    await setting.publish_recipient(status="frozen")
    assert await setting.admit(quote, transfer_id=new_object_id()) == [Outcome.recipient_inactive]
    assert await setting.unchanged(quote)


async def test_quote_refusals_change_nothing(setting: Setting) -> None:
    await setting.publish_recipient()
    expired = await setting.quote(minutes=-1)
    reply = await setting.admit(expired, transfer_id=new_object_id())
    assert reply == [Outcome.quote_refused, quote_expired]
    assert await setting.unchanged(expired)
    unknown = msgspec.structs.replace(expired, id=new_object_id())
    reply = await setting.admit(unknown, transfer_id=new_object_id())
    assert reply == [Outcome.quote_refused, quote_unknown]


async def test_a_quote_in_another_currency_changes_nothing(setting: Setting) -> None:
    await setting.publish_recipient()
    quote = await setting.quote(currency="EUR")
    reply = await setting.admit(quote, transfer_id=new_object_id())
    assert reply[0] == Outcome.currency_mismatch
    assert await setting.unchanged(quote)


async def test_the_daily_limit_refuses_without_taking_the_quote(setting: Setting) -> None:
    await setting.publish_recipient()
    first = await setting.quote(usd_minor=limit_usd_minor - 100)
    assert (await setting.admit(first, transfer_id=new_object_id()))[0] == Outcome.admitted
    second = await setting.quote(usd_minor=101)
    reply = await setting.admit(second, transfer_id=new_object_id())
    assert reply == [Outcome.limit_refused, 0, limit_usd_minor - 100]
    record = setting.quotes.record_key(tenant_id=tenant_id, quote_id=second.id)
    assert await setting.redis.hget(record, "used_by") is None
    assert await setting.day_usd_minor() == limit_usd_minor - 100
    exact = await setting.quote(usd_minor=100)  # Reaching the limit exactly is allowed.
    assert (await setting.admit(exact, transfer_id=new_object_id()))[0] == Outcome.admitted


async def test_a_quote_without_its_usd_equivalent_counts_what_the_caller_values(
    setting: Setting,
) -> None:
    await setting.publish_recipient()
    quote = await setting.quote(usd_minor=None)
    transfer_id = new_object_id()
    reply = await setting.admit(quote, transfer_id=transfer_id)
    assert reply[0] == Outcome.usd_unknown
    assert await setting.unchanged(quote)
    reply = await setting.admit(quote, transfer_id=transfer_id, usd_minor=2_500)
    assert (reply[0], int(reply[6])) == (Outcome.admitted, 2_500)  # type: ignore[call-overload]
    assert await setting.day_usd_minor() == 2_500
