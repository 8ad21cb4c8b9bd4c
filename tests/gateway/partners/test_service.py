"""The `Partners` service over a real Postgres and Redis: `get` answers the tenant's partner
with its ledger number and refuses another tenant's; `send_many` answers one result per
order, in order, each order through its own partner's adapter (sandbox partners by their
reference, an http partner as a real server on a loopback port answers), with an unknown
partner, another tenant's, or one of another currency rejected unsent; it sends at most
`sends_in_flight_max` at once; one partner's open breaker leaves the others alone; a
partner whose secret does not open is unavailable and sent nothing. In production the
address policy holds at creation (https, public addresses, no sandbox adapter: a 422 naming
the field) and again at every send (a partner whose URL is refused is sent nothing). After a
key rotation, reseal moves every partner secret under the new key."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from redis.asyncio import Redis

from gateway.http.ratelimit import Principal
from gateway.infra.sealing import SecretBox
from gateway.partners import wire
from gateway.partners.errors import InvalidPartner, PartnerNotFound, PartnerUnreachable
from gateway.partners.service import PartnerLimits, Partners, reseal_partner_secrets
from gateway.tenancy.records import create_tenant
from ledger.currencies import CurrencyRegistry
from ledger.transfers import new_object_id
from rails.partners.partner import PartnerOrder, PartnerReceipt, PartnerRejected, PartnerUnavailable
from rails.partners.sandbox import SandboxPartner
from tests.rails.partners.partner_server import PartnerServer

key = "partner-tests-sealing-key-" + "k" * 32
other_key = "partner-tests-another-key-" + "o" * 32


async def _no_wait(seconds: float) -> None:
    del seconds


def _service(
    pool: asyncpg.Pool,
    redis: Redis,
    namespace: str,
    *,
    sandbox: bool = True,
    box: SecretBox | None = None,
    limits: PartnerLimits | None = None,
) -> Partners:
    return Partners(
        pool=pool,
        redis=redis,
        box=box or SecretBox(key),
        currencies=CurrencyRegistry(("EUR", "GBP")),
        sandbox=sandbox,
        limits=limits or PartnerLimits(timeout_ms=5_000, send_tries_max=2),
        namespace=namespace,
        sleep=_no_wait,
    )


@pytest.fixture
async def partners(
    pool: asyncpg.Pool, redis_client: Redis, namespace: str
) -> AsyncIterator[Partners]:
    service = _service(pool, redis_client, namespace)
    try:
        yield service
    finally:
        await service.close()


async def _principal(pool: asyncpg.Pool, name: str = "partners") -> Principal:
    tenant = await create_tenant(pool, name=name, tier="growth", compliance_region="EU")
    return Principal(
        tenant_id=tenant.id, role="admin", key_id=1, compliance_region="EU", status="active"
    )


async def _partner(
    partners: Partners,
    principal: Principal,
    *,
    adapter: str = "sandbox",
    reference: str = "ACME",
    url: str | None = None,
    currency: str = "EUR",
) -> tuple[int, str | None]:
    body = wire.PartnerCreate(
        kind="savings",
        name="Acme Savings",
        currency=currency,
        adapter=adapter,  # type: ignore[arg-type]
        reference=reference,
        url=url,
    )
    row, secret = await partners.create(principal, partner_id=new_object_id(), body=body)
    return row.id.int, secret


def _order(principal: Principal, partner_id: int, *, currency: str = "EUR") -> PartnerOrder:
    return PartnerOrder(
        order_id=new_object_id(),
        tenant_id=principal.tenant_id,
        partner_id=partner_id,
        orchestration_id=new_object_id(),
        bucket_id=new_object_id(),
        customer_id=new_object_id(),
        currency=currency,
        amount_minor=1_000,
        account_reference="ACC-1",
    )


async def test_get_answers_the_tenants_partner_and_refuses_anothers(
    pool: asyncpg.Pool, partners: Partners
) -> None:
    owner, stranger = await _principal(pool, "owner"), await _principal(pool, "stranger")
    partner_id, secret = await _partner(partners, owner)
    assert secret is None
    record = await partners.get(tenant_id=owner.tenant_id, partner_id=partner_id)
    assert (record.id.int, record.tenant_id, record.adapter) == (
        partner_id,
        owner.tenant_id,
        "sandbox",
    )
    assert 1 <= record.ledger_number < 2**32
    with pytest.raises(PartnerNotFound):
        await partners.get(tenant_id=stranger.tenant_id, partner_id=partner_id)


async def test_send_many_answers_each_order_in_order_through_its_partner(
    pool: asyncpg.Pool, redis_client: Redis, namespace: str, partners: Partners
) -> None:
    principal = await _principal(pool)
    accepting, _ = await _partner(partners, principal, reference="ACME")
    failing, _ = await _partner(partners, principal, reference="sandbox:fail:account_closed")
    silent, _ = await _partner(partners, principal, reference="sandbox:unavailable")
    flaky, _ = await _partner(partners, principal, reference="sandbox:flaky:1")  # Two tries.
    orders = [
        _order(principal, accepting),
        _order(principal, failing),
        _order(principal, silent),
        _order(principal, flaky),
        _order(principal, accepting),
    ]
    answers = await partners.send_many(orders)
    assert [type(a) for a in answers] == [
        PartnerReceipt,
        PartnerRejected,
        PartnerUnavailable,
        PartnerReceipt,
        PartnerReceipt,
    ]
    receipts = [a for a in answers if isinstance(a, PartnerReceipt)]
    assert [r.order_id for r in receipts] == [
        orders[0].order_id,
        orders[3].order_id,
        orders[4].order_id,
    ]
    assert isinstance(answers[1], PartnerRejected)
    assert answers[1].code == "account_closed"
    again = await partners.send_many(orders)
    assert again[0] == answers[0]
    assert again[3] == answers[3]
    sandbox = SandboxPartner(
        partner_id=accepting, reference="ACME", redis=redis_client, namespace=namespace
    )
    assert await sandbox.payments(orders[0].order_id) == 1
    assert await partners.sandbox_payments(orders[4].order_id) == 1
    assert await partners.sandbox_payments(orders[1].order_id) == 0
    assert await partners.send_many([]) == []


async def test_an_http_partner_is_sent_its_orders_signed_with_its_own_secret(
    pool: asyncpg.Pool, partners: Partners
) -> None:
    principal = await _principal(pool)
    partner_id, secret = await _partner(
        partners, principal, adapter="http", url="http://127.0.0.1:9/orders"
    )
    assert secret is not None
    # The partner's server knows the secret the tenant was shown, and listens where the URL
    # points (moved there before the partner's first send builds its adapter).
    with PartnerServer(secret=secret) as server:
        await pool.execute("UPDATE partners SET url = $1", server.url)
        answers = await partners.send_many([_order(principal, partner_id) for _ in range(3)])
        received = server.snapshot()
    assert [type(a) for a in answers] == [PartnerReceipt] * 3
    assert len(received) == 3
    assert all(r.verified for r in received)


async def test_an_order_the_partner_cannot_take_is_rejected_unsent(
    pool: asyncpg.Pool, redis_client: Redis, namespace: str, partners: Partners
) -> None:
    owner, stranger = await _principal(pool, "owner"), await _principal(pool, "stranger")
    partner_id, _ = await _partner(partners, owner)
    unknown = _order(owner, new_object_id())
    anothers = _order(stranger, partner_id)
    pounds = _order(owner, partner_id, currency="GBP")
    answers = await partners.send_many([unknown, anothers, pounds])
    assert [a.code for a in answers if isinstance(a, PartnerRejected)] == [
        "unknown_partner",
        "unknown_partner",
        "currency_mismatch",
    ]
    sandbox = SandboxPartner(
        partner_id=partner_id, reference="ACME", redis=redis_client, namespace=namespace
    )
    for order in (anothers, pounds):
        assert await sandbox.payments(order.order_id) == 0


async def test_sends_in_flight_are_bounded(
    pool: asyncpg.Pool, redis_client: Redis, namespace: str
) -> None:
    limits = PartnerLimits(timeout_ms=5_000, send_tries_max=1, sends_in_flight_max=2)
    service = _service(pool, redis_client, namespace, limits=limits)
    principal = await _principal(pool)
    try:
        partner_id, secret = await _partner(
            service, principal, adapter="http", url="http://127.0.0.1:9/orders"
        )
        assert secret is not None
        with PartnerServer(secret=secret, delay_seconds=0.1) as server:
            await pool.execute("UPDATE partners SET url = $1", server.url)
            answers = await service.send_many([_order(principal, partner_id) for _ in range(6)])
            seen = server.in_flight_max
    finally:
        await service.close()
    assert [type(a) for a in answers] == [PartnerReceipt] * 6
    assert seen == 2


async def test_one_partners_open_breaker_leaves_the_others_alone(
    pool: asyncpg.Pool, redis_client: Redis, namespace: str
) -> None:
    limits = PartnerLimits(timeout_ms=5_000, send_tries_max=1, failure_threshold=2)
    service = _service(pool, redis_client, namespace, limits=limits)
    principal = await _principal(pool)
    try:
        silent, _ = await _partner(service, principal, reference="sandbox:unavailable")
        fine, _ = await _partner(service, principal, reference="ACME")
        for _ in range(2):
            await service.send_many([_order(principal, silent)])
        (refused, accepted) = await service.send_many(
            [_order(principal, silent), _order(principal, fine)]
        )
    finally:
        await service.close()
    assert isinstance(refused, PartnerUnavailable)
    assert "circuit open" in str(refused)
    assert isinstance(accepted, PartnerReceipt)


async def test_a_partner_whose_secret_does_not_open_is_sent_nothing(
    pool: asyncpg.Pool, redis_client: Redis, namespace: str, partners: Partners
) -> None:
    principal = await _principal(pool)
    with PartnerServer(secret="whsec_" + "A" * 43 + "=") as server:
        partner_id, _ = await _partner(partners, principal, adapter="http", url=server.url)
        other = _service(pool, redis_client, namespace, box=SecretBox(other_key))
        try:
            (answer,) = await other.send_many([_order(principal, partner_id)])
        finally:
            await other.close()
        assert server.snapshot() == []
    assert isinstance(answer, PartnerUnavailable)


async def test_production_applies_the_address_policy_at_creation_and_at_every_send(
    pool: asyncpg.Pool, redis_client: Redis, namespace: str, partners: Partners
) -> None:
    production = _service(pool, redis_client, namespace, sandbox=False)
    principal = await _principal(pool)
    try:
        for adapter, url, field, error in (
            ("http", "https://127.0.0.1/orders", "url", PartnerUnreachable),
            ("http", "https://10.0.0.8/orders", "url", PartnerUnreachable),
            ("http", "http://93.184.215.14/orders", "url", PartnerUnreachable),
            ("http", None, "url", InvalidPartner),
            ("sandbox", None, "adapter", PartnerUnreachable),
        ):
            with pytest.raises(error) as raised:
                await _partner(production, principal, adapter=adapter, url=url)
            assert raised.value.field == field
        assert await pool.fetchval("SELECT count(*) FROM partners") == 0
        with PartnerServer(secret="whsec_" + "A" * 43 + "=") as server:
            # Made in the sandbox, as if its URL had been fine when it was created.
            partner_id, _ = await _partner(partners, principal, adapter="http", url=server.url)
            (answer,) = await production.send_many([_order(principal, partner_id)])
            assert server.snapshot() == []
    finally:
        await production.close()
    assert isinstance(answer, PartnerUnavailable)
    assert "may not be called" in str(answer)


async def test_reseal_moves_every_partner_secret_under_the_new_key(
    pool: asyncpg.Pool, redis_client: Redis, namespace: str
) -> None:
    old = _service(pool, redis_client, namespace, box=SecretBox(other_key))
    principal = await _principal(pool)
    try:
        partner_id, secret = await _partner(
            old, principal, adapter="http", url="http://127.0.0.1:9/orders"
        )
        await _partner(old, principal)  # A sandbox partner: no secret to reseal.
    finally:
        await old.close()
    rotated = SecretBox(key, previous=[other_key])
    assert await reseal_partner_secrets(pool, rotated) == 1
    assert await reseal_partner_secrets(pool, rotated) == 0
    sealed = await pool.fetchval(
        "SELECT secret_sealed FROM partners WHERE secret_sealed IS NOT NULL"
    )
    new_only = SecretBox(key)
    assert new_only.is_current(sealed)
    row_id = await pool.fetchval("SELECT id FROM partners WHERE secret_sealed IS NOT NULL")
    assert row_id.int == partner_id
    assert new_only.open(sealed, bound_to=row_id.bytes) == secret
