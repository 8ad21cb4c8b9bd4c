"""The sandbox partner on the real local Redis: it answers by the partner's reference
(`sandbox:fail:CODE` rejects with CODE, `sandbox:unavailable` never answers,
`sandbox:flaky:N` fails each order's first N sends then accepts, anything else accepts); it is
idempotent by order id, answering the first receipt (or rejection) again however often the
order is sent, from one process or from two sharing Redis, even at once; and it pays each
order at most once (`payments`)."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from ledger.invariants import InvariantViolation
from rails.partners.partner import PartnerOrder, PartnerReceipt, PartnerRejected, PartnerUnavailable
from rails.partners.sandbox import SandboxPartner, behaviour_of, receipt_reference
from tests.conftest import redis_url

partner_id = 0x0190_0000_0000_7000_8000_0000_0000_0001
new_year = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def order(number: int = 1, *, amount_minor: int = 2_500) -> PartnerOrder:
    return PartnerOrder(
        order_id=0x0190_0000_0000_7000_9000_0000_0000_0000 + number,
        tenant_id=7,
        partner_id=partner_id,
        orchestration_id=1,
        bucket_id=2,
        customer_id=3,
        currency="EUR",
        amount_minor=amount_minor,
    )


def sandbox(
    redis: Redis, namespace: str, reference: str, *, clock: list[float] | None = None
) -> SandboxPartner:
    seconds = clock or [new_year]
    return SandboxPartner(
        partner_id=partner_id,
        reference=reference,
        redis=redis,
        namespace=namespace,
        clock=lambda: seconds[0],
    )


@pytest.fixture
async def other_client() -> AsyncIterator[Redis]:
    """A second connection to the same Redis: another process's sandbox."""
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("sandbox:fail:AC04", ("reject", "AC04", 0)),
        ("sandbox:fail:account_closed", ("reject", "account_closed", 0)),
        ("sandbox:fail:", ("reject", "unspecified", 0)),
        ("sandbox:fail:not a code", ("reject", "unspecified", 0)),
        ("sandbox:fail:" + "X" * 33, ("reject", "unspecified", 0)),
        ("sandbox:unavailable", ("unavailable", "", 0)),
        ("sandbox:flaky:1", ("flaky", "", 1)),
        ("sandbox:flaky:100", ("flaky", "", 100)),
        ("sandbox:flaky:0", ("accept", "", 0)),
        ("sandbox:flaky:101", ("accept", "", 0)),
        ("sandbox:flaky:two", ("accept", "", 0)),
        ("sandbox:unavailable:later", ("accept", "", 0)),
        ("ACME-SAVINGS-001", ("accept", "", 0)),
    ],
)
def test_the_reference_names_the_behaviour(reference: str, expected: tuple[str, str, int]) -> None:
    assert behaviour_of(reference) == expected


async def test_an_order_is_accepted_once_and_its_first_receipt_answered_again(
    redis_client: Redis, namespace: str
) -> None:
    seconds = [new_year]
    partner = sandbox(redis_client, namespace, "ACME-SAVINGS-001", clock=seconds)
    first = await partner.send(order())
    seconds[0] += 60
    again = await partner.send(order())
    assert (
        first
        == again
        == PartnerReceipt(
            order_id=order().order_id,
            partner_reference=receipt_reference(order().order_id),
            accepted_at=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
        )
    )
    assert len(first.partner_reference) == 31
    assert await partner.payments(order().order_id) == 1
    assert await partner.payments(order(2).order_id) == 0
    assert (await partner.send(order(2))).partner_reference != first.partner_reference
    assert await partner.payments(order(2).order_id) == 1


async def test_a_failing_reference_rejects_every_order_with_its_code_and_pays_none(
    redis_client: Redis, namespace: str
) -> None:
    partner = sandbox(redis_client, namespace, "sandbox:fail:account_closed")
    for _ in range(3):
        with pytest.raises(PartnerRejected) as raised:
            await partner.send(order())
        assert raised.value.code == "account_closed"
    assert await partner.payments(order().order_id) == 0


async def test_an_unavailable_reference_never_answers(redis_client: Redis, namespace: str) -> None:
    partner = sandbox(redis_client, namespace, "sandbox:unavailable")
    for _ in range(5):
        with pytest.raises(PartnerUnavailable):
            await partner.send(order())
    assert await partner.payments(order().order_id) == 0


async def test_a_flaky_reference_fails_each_orders_first_sends_then_pays_it_once(
    redis_client: Redis, namespace: str
) -> None:
    partner = sandbox(redis_client, namespace, "sandbox:flaky:2")
    for number in (1, 2):
        for _ in range(2):
            with pytest.raises(PartnerUnavailable):
                await partner.send(order(number))
        receipt = await partner.send(order(number))
        assert await partner.send(order(number)) == receipt
        assert await partner.payments(order(number).order_id) == 1


async def test_two_processes_sharing_redis_share_each_orders_state(
    redis_client: Redis, other_client: Redis, namespace: str
) -> None:
    here = sandbox(redis_client, namespace, "sandbox:flaky:1")
    there = sandbox(other_client, namespace, "sandbox:flaky:1")
    with pytest.raises(PartnerUnavailable):
        await here.send(order())
    receipt = await there.send(order())  # The order's second send, wherever it comes from.
    assert await here.send(order()) == receipt
    assert await here.payments(order().order_id) == await there.payments(order().order_id) == 1


async def test_sends_at_once_from_two_processes_pay_the_order_once(
    redis_client: Redis, other_client: Redis, namespace: str
) -> None:
    partners = [sandbox(client, namespace, "ACME") for client in (redis_client, other_client)]
    receipts = await asyncio.gather(*(partners[n % 2].send(order()) for n in range(40)))
    assert len(set(receipts)) == 1
    assert await partners[0].payments(order().order_id) == 1


async def test_an_order_for_another_partner_is_a_programmer_error(
    redis_client: Redis, namespace: str
) -> None:
    stranger = PartnerOrder(
        order_id=1,
        tenant_id=7,
        partner_id=partner_id + 1,
        orchestration_id=1,
        bucket_id=2,
        customer_id=3,
        currency="EUR",
        amount_minor=1,
    )
    with pytest.raises(InvariantViolation):
        await sandbox(redis_client, namespace, "ACME").send(stranger)
