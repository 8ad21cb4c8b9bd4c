"""The collections service on real Postgres and Redis and the sandbox providers: a mandate is
validated by its provider before anything is stored, its bank details are sealed at rest and
shown masked, its creation is audited with the consent and evented in the same transaction;
a collection needs an active mandate and a date within bounds and gets an end-to-end id of
SEPA's characters; a mandate opens the tenant's wallet in its currency when the tenant began
before the currency was enabled; a deactivation is audited and refuses later collections; a late
collection is looked up at its provider at most once per interval.

The customers domain is represented by a lookup over a dict (its own tests are its own)."""

from __future__ import annotations

import datetime
import uuid

import asyncpg
import msgspec
import pytest
from redis.asyncio import Redis

from gateway.collections import wire
from gateway.collections.errors import (
    InvalidCollectionDate,
    InvalidConsent,
    MandateInactive,
    ProviderCurrencyMismatch,
    ProviderNotConfigured,
)
from gateway.collections.service import Collections
from gateway.collections.worker import CollectionsWorker
from gateway.http.ids import decode_id, encode_id
from gateway.http.ratelimit import Principal
from ledger.errors import DomainError
from ledger.transfers import new_object_id
from rails.bank_details import InvalidBankDetails
from rails.collections.provider import CollectionLookup
from tests.gateway.collections.fixtures import Customers, Domain, iban, make_domain, secret_box


class Setup(msgspec.Struct, kw_only=True):
    domain: Domain
    service: Collections
    customers: Customers
    principal: Principal
    customer_id: str


@pytest.fixture
async def setup(pool: asyncpg.Pool, redis_client: Redis, namespace: str) -> Setup:
    domain = await make_domain(pool, redis_client, namespace)
    customers = Customers()
    customer = new_object_id()
    customers.known[domain.world.tenant_id, customer] = Customers.Record(name="Erika Mustermann")
    service = Collections(
        pool=pool,
        redis=redis_client,
        secret_box=secret_box,
        currencies=domain.world.ledger.currencies,
        providers=domain.providers,
        customers=customers,
        applier=domain.applier,
        lookup_after_seconds=0,
    )
    principal = Principal(
        tenant_id=domain.world.tenant_id,
        role="admin",
        key_id=1,
        compliance_region="EU",
        status="active",
    )
    return Setup(
        domain=domain,
        service=service,
        customers=customers,
        principal=principal,
        customer_id=encode_id("cus", customer),
    )


def _mandate_body(customer_id: str, **changes: object) -> wire.MandateCreate:
    body = wire.MandateCreate(
        customer_id=customer_id,
        provider="sepa_dd",
        currency="EUR",
        bank_details={"iban": iban, "bic": "COBADEFFXXX"},
        reference="gym 7",
        consent=wire.Consent(
            accepted_at=datetime.datetime.now(tz=datetime.UTC),
            ip="203.0.113.7",
            user_agent="Mozilla/5.0",
        ),
    )
    return msgspec.structs.replace(body, **changes)


async def test_a_mandate_is_sealed_masked_audited_and_evented(setup: Setup) -> None:
    mandate_id = new_object_id()
    mandate = await setup.service.create_mandate(
        setup.principal, mandate_id=mandate_id, body=_mandate_body(setup.customer_id)
    )
    assert (mandate.status, mandate.bank_details["iban"]) == ("pending", "••••3000")
    assert mandate.bank_details["bic"] == "COBADEFFXXX"
    pool = setup.domain.pool
    row = await pool.fetchrow("SELECT * FROM mandates WHERE id = $1", uuid.UUID(int=mandate_id))
    assert row is not None
    assert iban not in str(dict(row))
    assert setup.service.open_bank_details(row["id"], row["bank_details_sealed"])[0]["iban"] == iban
    audit = await pool.fetchrow(
        "SELECT action, details::text AS details FROM audit_outbox WHERE target = $1",
        f"mandate:{uuid.UUID(int=mandate_id)}",
    )
    assert audit is not None
    assert audit["action"] == "mandate.create"
    assert "203.0.113.7" in audit["details"]
    assert "Mozilla/5.0" in audit["details"]
    events = await pool.fetch("SELECT type FROM events WHERE object_id = $1", row["id"])
    assert [event["type"] for event in events] == ["mandate.pending"]
    again = await setup.service.create_mandate(
        setup.principal, mandate_id=mandate_id, body=_mandate_body(setup.customer_id)
    )
    assert again.id == mandate.id


async def test_a_mandate_opens_the_wallet_its_collections_will_credit(setup: Setup) -> None:
    # A tenant that began before EUR was enabled: it has no EUR wallet yet.
    newcomer = msgspec.structs.replace(setup.principal, tenant_id=setup.principal.tenant_id + 1)
    customer = new_object_id()
    setup.customers.known[newcomer.tenant_id, customer] = Customers.Record(name="Jan Jansen")
    wallet_id = setup.domain.world.ledger.wallet_id(
        newcomer.tenant_id, setup.domain.world.ledger.currencies.get("EUR")
    )
    assert await setup.domain.world.ledger.client.lookup_accounts([wallet_id]) == []
    await setup.service.create_mandate(
        newcomer, mandate_id=new_object_id(), body=_mandate_body(encode_id("cus", customer))
    )
    (wallet,) = await setup.domain.world.ledger.client.lookup_accounts([wallet_id])
    assert wallet.id == wallet_id


@pytest.mark.parametrize(
    ("changes", "error", "field"),
    [
        ({"currency": "GBP"}, ProviderCurrencyMismatch, "currency"),
        (
            {"bank_details": {"iban": "DE00370400440532013000"}},
            InvalidBankDetails,
            "bank_details.iban",
        ),
        ({"bank_details": {"iban": iban, "pin": "1"}}, InvalidBankDetails, "bank_details.pin"),
    ],
)
async def test_a_mandate_the_provider_refuses_names_the_field_and_stores_nothing(
    setup: Setup, changes: dict[str, object], error: type[DomainError], field: str
) -> None:
    with pytest.raises(error) as raised:
        await setup.service.create_mandate(
            setup.principal,
            mandate_id=new_object_id(),
            body=_mandate_body(setup.customer_id, **changes),
        )
    assert [name for name, _ in raised.value.field_errors()] == [field]
    assert await setup.domain.pool.fetchval("SELECT count(*) FROM mandates") == 0


async def test_a_consent_from_the_future_an_unknown_customer_and_no_transport_are_refused(
    setup: Setup, redis_client: Redis
) -> None:
    tomorrow = datetime.datetime.now(tz=datetime.UTC) + datetime.timedelta(days=1)
    consent = wire.Consent(accepted_at=tomorrow, ip="203.0.113.7", user_agent="x")
    with pytest.raises(InvalidConsent):
        await setup.service.create_mandate(
            setup.principal,
            mandate_id=new_object_id(),
            body=_mandate_body(setup.customer_id, consent=consent),
        )
    with pytest.raises(DomainError) as unknown:
        await setup.service.create_mandate(
            setup.principal,
            mandate_id=new_object_id(),
            body=_mandate_body(encode_id("cus", new_object_id())),
        )
    assert unknown.value.code == "not_found"
    no_transport = Collections(
        pool=setup.domain.pool,
        redis=redis_client,
        secret_box=secret_box,
        currencies=setup.domain.world.ledger.currencies,
        providers={},
        customers=Customers(),
        applier=setup.domain.applier,
        lookup_after_seconds=0,
    )
    with pytest.raises(ProviderNotConfigured):
        await no_transport.create_mandate(
            setup.principal, mandate_id=new_object_id(), body=_mandate_body(setup.customer_id)
        )
    assert await setup.domain.pool.fetchval("SELECT count(*) FROM mandates") == 0


async def test_collections_need_an_active_mandate_and_a_date_within_bounds(setup: Setup) -> None:
    body = wire.CollectionCreate(amount=4_900, reference="January")
    active = await setup.domain.mandate()
    with pytest.raises(MandateInactive):
        await setup.service.collect(
            setup.principal,
            mandate_id=(await setup.domain.mandate(status="pending")).id.int,
            collection_id=new_object_id(),
            body=body,
        )
    yesterday = datetime.datetime.now(tz=datetime.UTC).date() - datetime.timedelta(days=1)
    with pytest.raises(InvalidCollectionDate):
        await setup.service.collect(
            setup.principal,
            mandate_id=active.id.int,
            collection_id=new_object_id(),
            body=msgspec.structs.replace(body, collection_date=yesterday),
        )
    collection = await setup.service.collect(
        setup.principal, mandate_id=active.id.int, collection_id=new_object_id(), body=body
    )
    assert collection.status == "pending"
    assert collection.end_to_end_id.startswith("COL")
    assert len(collection.end_to_end_id) == 29
    assert collection.end_to_end_id.isalnum()


async def test_a_deactivated_mandate_is_audited_and_refuses_collections(setup: Setup) -> None:
    mandate = await setup.domain.mandate()
    deactivated = await setup.service.deactivate(setup.principal, mandate.id.int)
    assert deactivated.status == "deactivated"
    again = await setup.service.deactivate(setup.principal, mandate.id.int)
    assert again.status == "deactivated"
    actions = await setup.domain.pool.fetch(
        "SELECT action FROM audit_outbox WHERE target = $1", f"mandate:{mandate.id}"
    )
    assert [row["action"] for row in actions] == ["mandate.deactivate"]
    with pytest.raises(MandateInactive):
        await setup.service.collect(
            setup.principal,
            mandate_id=mandate.id.int,
            collection_id=new_object_id(),
            body=wire.CollectionCreate(amount=100, reference="after"),
        )


def _worker(domain: Domain) -> CollectionsWorker:
    return CollectionsWorker(
        pool=domain.pool, providers=domain.providers, secret_box=secret_box, applier=domain.applier
    )


async def _active_mandate(setup: Setup) -> int:
    """A mandate submitted by the worker to the sandbox and activated by its notification."""
    domain = setup.domain
    worker = _worker(domain)
    mandate = await setup.service.create_mandate(
        setup.principal, mandate_id=new_object_id(), body=_mandate_body(setup.customer_id)
    )
    assert await worker.submit_mandates() == 1
    mandate_id = decode_id("mdt", mandate.id)
    submitted = await setup.service.read_mandate(setup.principal, mandate_id)
    assert submitted.provider_reference is not None
    await domain.notify(submitted.provider_reference, "mandate.active")
    await domain.applier.apply()
    return mandate_id


async def _submitted_collection(setup: Setup, mandate_id: int, reference: str) -> int:
    """A collection under the mandate, run by the worker through the sandbox; its id."""
    collection_id = new_object_id()
    await setup.service.collect(
        setup.principal,
        mandate_id=mandate_id,
        collection_id=collection_id,
        body=wire.CollectionCreate(amount=2_500, reference=reference),
    )
    assert await _worker(setup.domain).run_collections() == 1
    return collection_id


async def test_a_late_collection_is_looked_up_and_its_final_answer_applied(
    setup: Setup,
) -> None:
    mandate_id = await _active_mandate(setup)
    collection_id = await _submitted_collection(setup, mandate_id, "sandbox:fail:AM04")
    looked_up = await setup.service.read_collection(setup.principal, collection_id)
    assert (looked_up.status, looked_up.failure_code) == ("failed", "AM04")
    synthetic = await setup.domain.pool.fetchval(
        "SELECT count(*) FROM provider_notifications WHERE synthetic AND status = 'applied'"
    )
    assert synthetic == 1


async def test_a_late_collection_is_looked_up_at_most_once_per_interval(
    pool: asyncpg.Pool, redis_client: Redis, namespace: str, setup: Setup
) -> None:
    mandate_id = await _active_mandate(setup)
    slow = await make_domain(pool, redis_client, namespace, notification_delay_ms=600_000)
    setup.domain.providers.update(slow.providers)  # The provider answers in ten minutes.
    collection_id = await _submitted_collection(setup, mandate_id, "January")
    provider = setup.domain.providers["sepa_dd"]
    calls: list[str] = []
    real_lookup = provider.lookup_collection

    async def counted(reference: str) -> CollectionLookup:
        calls.append(reference)
        return await real_lookup(reference)

    provider.lookup_collection = counted  # type: ignore[method-assign,assignment]
    for _ in range(3):
        read = await setup.service.read_collection(setup.principal, collection_id)
        assert read.status == "pending"
    assert len(calls) == 1
