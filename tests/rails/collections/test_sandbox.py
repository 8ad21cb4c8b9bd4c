"""The sandbox providers, against real Redis, answer by the reference as SPEC §10 says.

Mandates: `pending` at once, then `mandate.active` due after the notification delay, or
`mandate.failed` with the code of `sandbox:fail:CODE` (the scheme's unspecified code for one
it does not know), or nothing at all for `sandbox:decline`. Collections: `pending`, then
`collection.succeeded` or `collection.failed`; `sandbox:return:CODE` succeeds and is returned
with CODE the return delay later, and a lookup answers each state at its time. Deactivating
a mandate makes later collections fail at once with the scheme's cancelled code; a
collection under a mandate that is not active, or with an amount or currency the scheme does
not carry, fails at once too. The same id again (in another call, in the same batch, from
another provider object on another connection) answers as the first and schedules nothing
new; references are deterministic. A `sandbox:balance:N` mandate reports N less what
collections accepted to succeed took; every other mandate, and an unknown one, reports none."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from redis.asyncio import Redis

from rails.collections.bacs_dd import BacsDirectDebit
from rails.collections.notifications import NotificationBody
from rails.collections.paywithaccount import PayWithAccount
from rails.collections.provider import CollectionRequest, MandateRequest
from rails.collections.sandbox import (
    ProviderReferenceUnknown,
    SandboxProvider,
    collection_reference,
    mandate_reference,
    notification_key,
    notifications_key,
)
from rails.collections.scheme import Scheme
from rails.collections.sepa_dd import SepaDirectDebit, sandbox_creditor
from tests import redis_server

delay_ms = 200
return_delay_ms = 3_000
start_seconds = 1_790_000_000.0
bank_details = {
    "paywithaccount": {"bank_code": "011", "account_number": "0000014579"},
    "sepa_dd": {"iban": "NL91ABNA0417164300", "bic": "ABNANL2A"},
    "bacs_dd": {"sort_code": "089999", "account_number": "66374958"},
}
schemes: list[Scheme] = [PayWithAccount(), SepaDirectDebit(sandbox_creditor), BacsDirectDebit()]


class Clock:
    """Unix seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now_ms = int(start_seconds * 1_000)

    def __call__(self) -> float:
        return self.now_ms / 1_000

    def advance_ms(self, milliseconds: int) -> None:
        self.now_ms += milliseconds


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.redis_url(0))
    yield client
    await client.aclose()


def provider(scheme: Scheme, redis: Redis, namespace: str, clock: Clock) -> SandboxProvider:
    return SandboxProvider(
        scheme,
        redis=redis,
        namespace=namespace,
        notification_delay_ms=delay_ms,
        return_delay_ms=return_delay_ms,
        clock=clock,
    )


def mandate(scheme: Scheme, mandate_id: int, reference: str = "ordinary") -> MandateRequest:
    return MandateRequest(
        mandate_id=mandate_id,
        currency=scheme.currency,
        reference=reference,
        bank_details=bank_details[scheme.name.value],
        account_holder_name="Ada Obi",
        consent_accepted_at=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
    )


def collection(
    scheme: Scheme,
    collection_id: int,
    *,
    mandate_id: int,
    reference: str = "ordinary",
    amount_minor: int = 1_500,
    currency: str | None = None,
) -> CollectionRequest:
    return CollectionRequest(
        collection_id=collection_id,
        mandate_id=mandate_id,
        mandate_provider_reference=mandate_reference(mandate_id),
        mandate_signed_at=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
        currency=currency or scheme.currency,
        amount_minor=amount_minor,
        reference=reference,
        end_to_end_id=f"E2E{collection_id}",
        sequence_type="first",
        bank_details=bank_details[scheme.name.value],
        account_holder_name="Ada Obi",
        collection_date=datetime.date(2026, 2, 1),
    )


async def scheduled(redis: Redis, namespace: str) -> list[tuple[int, NotificationBody]]:
    """Every scheduled notification, by due time (ms), decoded."""
    due: list[Any] = await redis.zrange(notifications_key(namespace), 0, -1, withscores=True)
    found = []
    for member, score in due:
        raw = await redis.hget(notification_key(namespace, member.decode()), "body")
        assert raw is not None
        found.append((int(score), msgspec.json.decode(raw, type=NotificationBody)))
    return found


async def active_mandate(sandbox: SandboxProvider, clock: Clock, mandate_id: int) -> None:
    await sandbox.create_mandates([mandate(sandbox.scheme, mandate_id)])
    clock.advance_ms(delay_ms)


@pytest.mark.parametrize("scheme", schemes, ids=lambda s: s.name.value)
async def test_a_mandate_is_pending_then_notified_active(
    scheme: Scheme, redis: Redis, namespace: str
) -> None:
    clock = Clock()
    sandbox = provider(scheme, redis, namespace, clock)
    (answer,) = await sandbox.create_mandates([mandate(scheme, 11)])
    assert answer.outcome == "pending"
    assert answer.provider_reference == mandate_reference(11)
    ((due_ms, note),) = await scheduled(redis, namespace)
    assert due_ms == clock.now_ms + delay_ms
    assert (note.type, note.data.reference, note.data.reason_code) == (
        "mandate.active",
        mandate_reference(11),
        None,
    )
    assert note.data.amount is None
    assert note.data.currency == scheme.currency


@pytest.mark.parametrize(
    ("reference", "code"),
    [
        ("sandbox:fail:AC04", "AC04"),
        ("sandbox:fail:AC04 rest", "AC04"),
        ("sandbox:fail:XX99", "MS03"),
        ("sandbox:fail:", "MS03"),
    ],
)
async def test_a_failing_mandate_is_notified_failed_with_its_code(
    reference: str, code: str, redis: Redis, namespace: str
) -> None:
    sandbox = provider(schemes[1], redis, namespace, Clock())
    await sandbox.create_mandates([mandate(schemes[1], 12, reference)])
    ((_, note),) = await scheduled(redis, namespace)
    assert (note.type, note.data.reason_code) == ("mandate.failed", code)


async def test_a_declined_mandate_stays_pending_without_a_notification(
    redis: Redis, namespace: str
) -> None:
    clock = Clock()
    sandbox = provider(schemes[2], redis, namespace, clock)
    (answer,) = await sandbox.create_mandates([mandate(schemes[2], 13, "sandbox:decline")])
    assert answer.outcome == "pending"
    assert await scheduled(redis, namespace) == []
    clock.advance_ms(3_600_000)
    (refused,) = (await sandbox.collect([collection(schemes[2], 14, mandate_id=13)])).answers
    assert (refused.outcome, refused.reason_code) == ("failed", "6")


async def test_the_same_mandate_again_answers_the_same_and_schedules_nothing_new(
    redis: Redis, namespace: str
) -> None:
    clock = Clock()
    first = provider(schemes[0], redis, namespace, clock)
    other_connection = Redis.from_url(redis_server.redis_url(0))
    try:
        second = provider(schemes[0], other_connection, namespace, clock)
        once = await first.create_mandates([mandate(schemes[0], 15), mandate(schemes[0], 15)])
        clock.advance_ms(50)
        again = await second.create_mandates([mandate(schemes[0], 15, "sandbox:fail:51")])
    finally:
        await other_connection.aclose()
    assert once == [*again, *again]
    ((due_ms, note),) = await scheduled(redis, namespace)
    assert note.type == "mandate.active"
    assert due_ms == int(start_seconds * 1_000) + delay_ms


@pytest.mark.parametrize("scheme", schemes, ids=lambda s: s.name.value)
async def test_a_collection_is_pending_then_notified_succeeded(
    scheme: Scheme, redis: Redis, namespace: str
) -> None:
    clock = Clock()
    sandbox = provider(scheme, redis, namespace, clock)
    await active_mandate(sandbox, clock, 21)
    run = await sandbox.collect([collection(scheme, 22, mandate_id=21)])
    (answer,) = run.answers
    assert (answer.outcome, answer.provider_reference) == ("pending", collection_reference(22))
    assert run.message is not None
    notes = [note for _, note in await scheduled(redis, namespace)]
    assert [(n.type, n.data.amount) for n in notes] == [
        ("mandate.active", None),
        ("collection.succeeded", 1_500),
    ]
    reference = collection_reference(22)
    assert (await sandbox.lookup_collection(reference)).status == "pending"
    clock.advance_ms(delay_ms)
    assert (await sandbox.lookup_collection(reference)).status == "succeeded"


async def test_a_failing_collection_is_notified_failed_and_looked_up_failed(
    redis: Redis, namespace: str
) -> None:
    clock = Clock()
    sandbox = provider(schemes[1], redis, namespace, clock)
    await active_mandate(sandbox, clock, 31)
    await sandbox.collect(
        [collection(schemes[1], 32, mandate_id=31, reference="sandbox:fail:AM04")]
    )
    note = (await scheduled(redis, namespace))[-1][1]
    assert (note.type, note.data.reason_code) == ("collection.failed", "AM04")
    clock.advance_ms(delay_ms)
    lookup = await sandbox.lookup_collection(collection_reference(32))
    assert (lookup.status, lookup.reason_code) == ("failed", "AM04")


async def test_a_returned_collection_succeeds_then_is_returned_after_the_return_delay(
    redis: Redis, namespace: str
) -> None:
    clock = Clock()
    sandbox = provider(schemes[1], redis, namespace, clock)
    await active_mandate(sandbox, clock, 41)
    collected_at_ms = clock.now_ms
    reference = collection_reference(42)
    await sandbox.collect(
        [collection(schemes[1], 42, mandate_id=41, reference="sandbox:return:MD06")]
    )
    timeline = [(due, n.type, n.data.reason_code) for due, n in await scheduled(redis, namespace)]
    assert timeline[1:] == [
        (collected_at_ms + delay_ms, "collection.succeeded", None),
        (collected_at_ms + delay_ms + return_delay_ms, "collection.returned", "MD06"),
    ]
    clock.advance_ms(delay_ms + return_delay_ms - 1)
    assert (await sandbox.lookup_collection(reference)).status == "succeeded"
    clock.advance_ms(1)
    lookup = await sandbox.lookup_collection(reference)
    assert (lookup.status, lookup.reason_code) == ("returned", "MD06")


@pytest.mark.parametrize("scheme", schemes, ids=lambda s: s.name.value)
async def test_after_deactivation_a_collection_fails_with_the_cancelled_code(
    scheme: Scheme, redis: Redis, namespace: str
) -> None:
    clock = Clock()
    sandbox = provider(scheme, redis, namespace, clock)
    await active_mandate(sandbox, clock, 51)
    await sandbox.deactivate_mandate(mandate_reference(51))
    await sandbox.deactivate_mandate(mandate_reference(51))
    run = await sandbox.collect([collection(scheme, 52, mandate_id=51)])
    (answer,) = run.answers
    assert (answer.outcome, answer.reason_code) == ("failed", scheme.mandate_cancelled_code)
    assert run.message is None
    assert [n.type for _, n in await scheduled(redis, namespace)] == ["mandate.active"]
    lookup = await sandbox.lookup_collection(collection_reference(52))
    assert (lookup.status, lookup.reason_code) == ("failed", scheme.mandate_cancelled_code)


async def test_a_collection_before_its_mandate_is_active_fails_with_no_mandate(
    redis: Redis, namespace: str
) -> None:
    sandbox = provider(schemes[1], redis, namespace, Clock())
    await sandbox.create_mandates([mandate(schemes[1], 61)])
    (answer,) = (await sandbox.collect([collection(schemes[1], 62, mandate_id=61)])).answers
    (unknown,) = (await sandbox.collect([collection(schemes[1], 63, mandate_id=69)])).answers
    assert (answer.outcome, answer.reason_code) == ("failed", "MD01")
    assert (unknown.outcome, unknown.reason_code) == ("failed", "MD01")


@pytest.mark.parametrize(
    ("scheme", "amount_minor", "currency", "code"),
    [
        (schemes[1], 100, "GBP", "AM03"),
        (schemes[1], 100_000_000_000, "EUR", "AM02"),
        (schemes[2], 2_000_000_001, "GBP", "AM02"),
        (schemes[0], 1_000_000_001, "NGN", "13"),
    ],
    ids=["sepa-currency", "sepa-amount", "bacs-amount", "pwa-amount"],
)
async def test_an_amount_or_currency_the_scheme_does_not_carry_fails_at_once(
    scheme: Scheme, amount_minor: int, currency: str, code: str, redis: Redis, namespace: str
) -> None:
    clock = Clock()
    sandbox = provider(scheme, redis, namespace, clock)
    await active_mandate(sandbox, clock, 71)
    request = collection(scheme, 72, mandate_id=71, amount_minor=amount_minor, currency=currency)
    (answer,) = (await sandbox.collect([request])).answers
    assert (answer.outcome, answer.reason_code) == ("failed", code)


async def test_the_same_collection_again_answers_the_same_and_schedules_nothing_new(
    redis: Redis, namespace: str
) -> None:
    clock = Clock()
    sandbox = provider(schemes[1], redis, namespace, clock)
    await active_mandate(sandbox, clock, 81)
    request = collection(schemes[1], 82, mandate_id=81, reference="sandbox:return:AC04")
    first = await sandbox.collect([request, request])
    await sandbox.deactivate_mandate(mandate_reference(81))
    clock.advance_ms(10)
    again = await sandbox.collect([request])
    assert first.answers == [again.answers[0]] * 2
    assert [n.type for _, n in await scheduled(redis, namespace)] == [
        "mandate.active",
        "collection.succeeded",
        "collection.returned",
    ]


async def test_a_lookup_of_an_unknown_reference_says_so(redis: Redis, namespace: str) -> None:
    sandbox = provider(schemes[0], redis, namespace, Clock())
    with pytest.raises(ProviderReferenceUnknown):
        await sandbox.lookup_collection(collection_reference(99))


def test_references_are_deterministic_and_fit_sepa() -> None:
    largest = (1 << 128) - 1
    assert mandate_reference(largest) == mandate_reference(largest)
    assert len(mandate_reference(largest)) <= 35
    assert mandate_reference(1) != mandate_reference(2) != collection_reference(1)


@pytest.mark.parametrize("scheme", schemes, ids=lambda s: s.name.value)
async def test_a_balance_mandate_reports_its_balance_less_what_was_collected(
    scheme: Scheme, redis: Redis, namespace: str
) -> None:
    clock = Clock()
    sandbox = provider(scheme, redis, namespace, clock)
    await sandbox.create_mandates([mandate(scheme, 41, "sandbox:balance:250000")])
    await active_mandate(sandbox, clock, 42)
    assert await sandbox.balance(mandate_reference(41)) == 250_000
    await sandbox.collect(
        [
            collection(scheme, 43, mandate_id=41, amount_minor=60_000),
            collection(scheme, 43, mandate_id=41, amount_minor=60_000),  # The same, once.
            collection(scheme, 44, mandate_id=41, amount_minor=1_000, reference="sandbox:fail:X"),
            collection(scheme, 45, mandate_id=41, amount_minor=9_000, currency="XXX"),
        ]
    )
    await sandbox.collect([collection(scheme, 43, mandate_id=41, amount_minor=60_000)])
    assert await sandbox.balance(mandate_reference(41)) == 190_000
    assert await sandbox.balance(mandate_reference(42)) is None
    assert await sandbox.balance(mandate_reference(99)) is None


@pytest.mark.parametrize(
    "reference", ["sandbox:balance:", "sandbox:balance:x", "sandbox:balance:10000000000001"]
)
async def test_a_malformed_or_huge_balance_reference_reports_none(
    reference: str, redis: Redis, namespace: str
) -> None:
    sandbox = provider(schemes[1], redis, namespace, Clock())
    await sandbox.create_mandates([mandate(schemes[1], 46, reference)])
    assert await sandbox.balance(mandate_reference(46)) is None
