"""Stored provider notifications applied to the ledger and the rows (real Postgres, Redis
and the embedded ledger): a success credits the wallet once whatever the provider repeats;
a return before its success is credited then reversed and ends `returned`; a return after
the money left takes back what the wallet has and records the shortfall for operations; a
contradiction changes nothing and is recorded; an unknown reference is recorded, never
guessed, and applied once the reference is known; a failure fatal to the mandate
deactivates it; a provider naming another amount than the collection's is recorded for
operations and the ledger moves the collection's own; a step the ledger refuses is recorded
for operations once, whatever the passes; and a pass killed between the ledger's credit and
the state's write is completed by the next pass without a second credit. A hypothesis
property drives a provider's true stories through the real path in any order, with
repeats, across passes: the end state, the wallet and the events are always the same."""

from __future__ import annotations

import asyncpg
import hypothesis.strategies as st
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from redis.asyncio import Redis

from gateway.collections.worker import CollectionsWorker
from ledger.transfers import new_object_id
from tests.gateway.collections.fixtures import Domain, make_domain, secret_box


@pytest.fixture
async def domain(pool: asyncpg.Pool, redis_client: Redis, namespace: str) -> Domain:
    return await make_domain(pool, redis_client, namespace)


async def _events(domain: Domain, object_id: object) -> list[str]:
    rows = await domain.pool.fetch(
        "SELECT type FROM events WHERE object_id = $1 ORDER BY created_at, type", object_id
    )
    return [row["type"] for row in rows]


async def _exceptions(domain: Domain, kind: str) -> list[asyncpg.Record]:
    return await domain.pool.fetch(
        "SELECT * FROM operations_exceptions WHERE kind = $1 ORDER BY created_at", kind
    )


async def test_a_success_credits_the_wallet_once_whatever_the_provider_repeats(
    domain: Domain,
) -> None:
    collection = await domain.collection(await domain.mandate(), 12_345)
    reference = collection.provider_reference
    assert reference is not None
    assert await domain.notify(reference, "collection.succeeded", event_id="e-1")
    assert not await domain.notify(reference, "collection.succeeded", event_id="e-1")  # replay
    assert await domain.notify(reference, "collection.succeeded", event_id="e-2")  # resent
    assert await domain.applier.apply() == 2
    assert await domain.applier.apply() == 0
    assert (await domain.read(collection)).status == "succeeded"
    assert await domain.wallet_posted() == 12_345
    assert await _events(domain, collection.id) == ["collection.succeeded"]


async def test_a_return_before_its_success_ends_returned_with_the_money_back(
    domain: Domain,
) -> None:
    collection = await domain.collection(await domain.mandate(), 5_000)
    reference = collection.provider_reference
    assert reference is not None
    await domain.notify(reference, "collection.returned", reason_code="MD06")
    await domain.applier.apply()
    await domain.notify(reference, "collection.succeeded")
    await domain.applier.apply()
    row = await domain.read(collection)
    assert (row.status, row.failure_code, row.returned_minor, row.shortfall_minor) == (
        "returned",
        "MD06",
        5_000,
        0,
    )
    assert row.failure_description
    assert await domain.wallet_posted() == 0
    assert sorted(await _events(domain, collection.id)) == [
        "collection.returned",
        "collection.succeeded",
    ]


async def test_a_provider_naming_another_amount_is_recorded_and_not_followed(
    domain: Domain,
) -> None:
    collection = await domain.collection(await domain.mandate(), 10_000)
    reference = collection.provider_reference
    assert reference is not None
    await domain.notify(reference, "collection.succeeded", event_id="e-1", amount_minor=9_999)
    await domain.notify(reference, "collection.succeeded", event_id="e-1", amount_minor=9_999)
    await domain.notify(reference, "collection.succeeded", event_id="e-2", amount_minor=10_000)
    assert await domain.applier.apply() == 2
    assert await domain.wallet_posted() == 10_000
    (mismatch,) = await _exceptions(domain, "provider_amount_mismatch")
    assert mismatch["object_id"] == collection.id
    assert msgspec.json.decode(mismatch["details"])["notified_amount_minor"] == 9_999


async def test_a_refused_ledger_step_is_left_to_operations_once(domain: Domain) -> None:
    # A tenant whose EUR wallet the ledger does not hold (mandates open it; this one's row
    # was moved to another tenant behind the service's back).
    unopened_tenant = domain.world.tenant_id + 1
    collection = await domain.collection(await domain.mandate(), 4_200)
    await domain.pool.execute(
        "UPDATE collections SET tenant_id = $2 WHERE id = $1", collection.id, unopened_tenant
    )
    reference = collection.provider_reference
    assert reference is not None
    await domain.notify(reference, "collection.succeeded")
    for _ in range(3):
        assert await domain.applier.apply() == 0
    (refused,) = await _exceptions(domain, "collection_ledger_refused")
    assert (refused["object_id"], refused["amount_minor"]) == (collection.id, 4_200)
    assert msgspec.json.decode(refused["details"])["code"] == "account_not_open"
    unopened = msgspec.structs.replace(collection, tenant_id=unopened_tenant)
    assert (await domain.read(unopened)).status == "pending"


async def test_a_return_after_the_money_left_records_the_shortfall(domain: Domain) -> None:
    collection = await domain.collection(await domain.mandate(), 8_000)
    reference = collection.provider_reference
    assert reference is not None
    await domain.notify(reference, "collection.succeeded")
    await domain.applier.apply()
    hold_id = new_object_id()
    ledger = domain.world.ledger
    tenant = domain.world.tenant_id
    await ledger.hold(tenant_id=tenant, hold_id=hold_id, currency_code="EUR", amount_minor=6_000)
    await ledger.capture_hold(tenant_id=tenant, hold_id=hold_id, currency_code="EUR")
    await domain.notify(reference, "collection.returned", reason_code="MD06")
    await domain.notify(reference, "collection.returned", reason_code="MD06")
    await domain.applier.apply()
    row = await domain.read(collection)
    assert (row.status, row.returned_minor, row.shortfall_minor) == ("returned", 2_000, 6_000)
    assert await domain.wallet_posted() == 0
    (shortfall,) = await _exceptions(domain, "collection_return_shortfall")
    assert (shortfall["amount_minor"], shortfall["object_id"]) == (6_000, collection.id)


async def test_a_failure_after_a_success_changes_nothing_and_is_recorded(domain: Domain) -> None:
    collection = await domain.collection(await domain.mandate(), 700)
    reference = collection.provider_reference
    assert reference is not None
    await domain.notify(reference, "collection.succeeded")
    await domain.applier.apply()
    await domain.notify(reference, "collection.failed", reason_code="AM04")
    assert await domain.applier.apply() == 1
    assert (await domain.read(collection)).status == "succeeded"
    assert await domain.wallet_posted() == 700
    assert len(await _exceptions(domain, "provider_notification_contradiction")) == 1


async def test_an_unknown_reference_is_recorded_then_applied_once_known(domain: Domain) -> None:
    mandate = await domain.mandate()
    collection = await domain.collection(mandate, 900)
    await domain.pool.execute(
        "UPDATE collections SET provider_reference = NULL WHERE id = $1", collection.id
    )
    await domain.notify("COL-late", "collection.succeeded")
    (unknown,) = await _exceptions(domain, "unknown_provider_reference")
    assert unknown["details"]  # The provider, event id and reference, for the operator.
    assert await domain.applier.apply() == 0
    await domain.pool.execute(
        "UPDATE collections SET provider_reference = 'COL-late' WHERE id = $1", collection.id
    )
    worker = CollectionsWorker(
        pool=domain.pool, providers=domain.providers, secret_box=secret_box, applier=domain.applier
    )
    assert await worker.rematch() == 1
    assert await domain.applier.apply() == 1
    assert await domain.wallet_posted() == 900


async def test_a_failure_fatal_to_the_mandate_deactivates_it(domain: Domain) -> None:
    mandate = await domain.mandate()
    collection = await domain.collection(mandate, 400)
    assert collection.provider_reference is not None
    await domain.notify(collection.provider_reference, "collection.failed", reason_code="AC04")
    await domain.applier.apply()
    failed = await domain.read(collection)
    assert (failed.status, failed.failure_code) == ("failed", "AC04")
    status = await domain.pool.fetchval("SELECT status FROM mandates WHERE id = $1", mandate.id)
    assert status == "deactivated"
    assert "mandate.deactivated" in await _events(domain, mandate.id)


async def test_a_pass_killed_after_the_credit_is_completed_without_a_second(
    domain: Domain,
) -> None:
    collection = await domain.collection(await domain.mandate(), 3_300)
    assert collection.provider_reference is not None
    await domain.notify(collection.provider_reference, "collection.succeeded")
    # The ledger's half of a pass, as a pass that died before its transaction did it.
    notifications = await domain.pool.fetch("SELECT id FROM provider_notifications")
    assert len(notifications) == 1
    from gateway.collections.applying import _movement  # noqa: PLC0415

    await domain.ledger.credit_many([_movement(collection)])
    assert (await domain.read(collection)).status == "pending"
    assert await domain.applier.apply() == 1
    assert (await domain.read(collection)).status == "succeeded"
    assert await domain.wallet_posted() == 3_300


# A provider's true stories and what each leaves: the final state and the wallet's money.
stories = {
    ("succeeded",): ("succeeded", 1),
    ("failed",): ("failed", 0),
    ("succeeded", "returned"): ("returned", 0),
}


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[tuple[str, ...], list[list[tuple[str, int]]]]:
    """A story; its notifications, each sent one to three times (a resend has an event id
    of its own, a replay the same one), in any order, split into the passes that apply
    them."""
    story = draw(st.sampled_from(sorted(stories)))
    sent = [
        (notice, draw(st.integers(0, 1)))
        for notice in story
        for _ in range(draw(st.integers(1, 3)))
    ]
    order = draw(st.permutations(sent))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(order) - 1)), max_size=2)))
    bounds = zip([0, *cuts], [*cuts, len(order)], strict=True)
    return story, [list(order[start:end]) for start, end in bounds if order[start:end]]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(delivery=deliveries())
async def test_the_end_and_the_money_do_not_depend_on_order_repeats_or_passes(
    domain: Domain, delivery: tuple[tuple[str, ...], list[list[tuple[str, int]]]]
) -> None:
    story, passes = delivery
    amount = 1_000
    before = await domain.wallet_posted()
    collection = await domain.collection(await domain.mandate(), amount)
    reference = collection.provider_reference
    assert reference is not None
    for batch in passes:
        for notice, copy in batch:
            await domain.notify(
                reference,
                f"collection.{notice}",
                event_id=f"{collection.id.hex}:{notice}:{copy}",
                reason_code=None if notice == "succeeded" else "MD06",
            )
        await domain.applier.apply()
    final, credited = stories[story]
    assert (await domain.read(collection)).status == final
    assert await domain.wallet_posted() - before == credited * amount
    events = await _events(domain, collection.id)
    assert sorted(events) == sorted(f"collection.{status}" for status in story)
