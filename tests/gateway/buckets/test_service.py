"""The buckets service on real Postgres and the embedded ledger: a bucket paid on to a
partner opens the partner's settlement account and keeps the partner's ledger number, which
a run's lines carry with the account reference; a partner of another currency, or unknown to
the tenant, is refused naming `partner_id`; the per-customer limits on buckets and live
rules hold, and a deleted rule frees its place.

Customers and partners are represented by lookups over dicts (their own tests are their
own)."""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass

import asyncpg
import msgspec
import pytest

from gateway.buckets import wire
from gateway.buckets.errors import (
    PartnerCurrencyMismatch,
    TooManyBuckets,
    TooManyRules,
    UnknownPartner,
)
from gateway.buckets.service import Buckets
from gateway.http.ids import decode_id, encode_id
from gateway.http.paging import page_request, positions
from gateway.http.ratelimit import Principal
from ledger.accounts import AccountType, tenant_account_id
from ledger.buckets import BucketsLedger
from ledger.clients import EmbeddedClient
from ledger.errors import DomainError
from ledger.transfers import new_object_id
from tests.ledger.fixtures import World, make_world


class NotFound(DomainError):
    code = "not_found"


class Customers:
    def __init__(self) -> None:
        self.known: set[tuple[int, int]] = set()

    async def get(self, *, tenant_id: int, customer_id: int) -> object:
        if (tenant_id, customer_id) not in self.known:
            raise NotFound("no such customer")
        return object()


class Partner(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    currency: str
    ledger_number: int


class Partners:
    def __init__(self) -> None:
        self.known: dict[tuple[int, int], Partner] = {}

    async def get(self, *, tenant_id: int, partner_id: int) -> Partner:
        found = self.known.get((tenant_id, partner_id))
        if found is None:
            raise NotFound("no such partner")
        return found


@dataclass
class Setup:
    world: World
    service: Buckets
    principal: Principal
    customer: int
    partners: Partners


@pytest.fixture
async def setup(pool: asyncpg.Pool) -> Setup:
    world = await make_world(EmbeddedClient(), {"EUR": 10_000})
    customers, partners = Customers(), Partners()
    customer = new_object_id()
    customers.known.add((world.tenant_id, customer))
    service = Buckets(
        pool=pool,
        ledger=BucketsLedger(world.ledger),
        currencies=world.ledger.currencies,
        customers=customers,
        partners=partners,
        buckets_per_customer_max=2,
        rules_per_customer_max=2,
    )
    principal = Principal(
        tenant_id=world.tenant_id, role="admin", key_id=1, compliance_region="EU", status="active"
    )
    return Setup(world, service, principal, customer, partners)


def _partner(setup: Setup, currency: str = "EUR", number: int = 41) -> str:
    partner_id = new_object_id()
    setup.partners.known[(setup.world.tenant_id, partner_id)] = Partner(
        id=uuid.UUID(int=partner_id), currency=currency, ledger_number=number
    )
    return encode_id("ptn", partner_id)


async def _bucket(setup: Setup, **fields: object) -> wire.Bucket:
    body = msgspec.convert(
        {"kind": "pension", "name": "Pension", "currency": "EUR", **fields}, wire.BucketCreate
    )
    return await setup.service.create_bucket(
        setup.principal, customer_id=setup.customer, bucket_id=new_object_id(), body=body
    )


async def _rule(setup: Setup, bucket: wire.Bucket, **fields: object) -> wire.Rule:
    body = msgspec.convert({"bucket_id": bucket.id, "kind": "remainder", **fields}, wire.RuleCreate)
    return await setup.service.create_rule(
        setup.principal, customer_id=setup.customer, rule_id=new_object_id(), body=body
    )


async def test_a_bucket_paid_to_a_partner_opens_its_account_and_its_lines_carry_it(
    setup: Setup,
) -> None:
    partner = _partner(setup, number=41)
    bucket = await _bucket(setup, partner_id=partner, account_reference="PEN-0042")
    assert (bucket.partner_id, bucket.account_reference) == (partner, "PEN-0042")
    account = tenant_account_id(setup.world.tenant_id, AccountType.PARTNER_SETTLEMENT, 978, 41)
    assert len(await setup.world.ledger.client.lookup_accounts([account])) == 1
    await _rule(setup, bucket)
    plan = await setup.service.plan(
        tenant_id=setup.world.tenant_id,
        customer_id=uuid.UUID(int=setup.customer),
        orchestration_id=uuid.uuid4(),
        currency="EUR",
        amount_minor=2_500,
        at=datetime.datetime.now(tz=datetime.UTC),
    )
    (line,) = plan.lines
    assert (line.partner_id, line.partner_ledger_number, line.account_reference) == (
        uuid.UUID(int=decode_id("ptn", partner)),
        41,
        "PEN-0042",
    )
    assert (line.amount_minor, plan.unallocated_minor) == (2_500, 0)
    # Rules on buckets of another currency take no part in a run of this one.
    other = await setup.service.plan(
        tenant_id=setup.world.tenant_id,
        customer_id=uuid.UUID(int=setup.customer),
        orchestration_id=uuid.uuid4(),
        currency="GBP",
        amount_minor=2_500,
        at=datetime.datetime.now(tz=datetime.UTC),
    )
    assert (other.lines, other.unallocated_minor) == ((), 2_500)


async def test_a_partner_of_another_currency_or_tenant_is_refused(setup: Setup) -> None:
    with pytest.raises(PartnerCurrencyMismatch) as mismatch:
        await _bucket(setup, partner_id=_partner(setup, currency="GBP"))
    assert mismatch.value.field == "partner_id"
    with pytest.raises(UnknownPartner):
        await _bucket(setup, partner_id=encode_id("ptn", new_object_id()))
    page = await setup.service.list_buckets(
        setup.principal,
        customer_id=setup.customer,
        page=page_request(positions, limit=10, cursor=None, limit_max=100),
    )
    assert page.items == []


async def test_the_per_customer_limits_hold_and_a_deleted_rule_frees_its_place(
    setup: Setup,
) -> None:
    first = await _bucket(setup)
    await _bucket(setup)
    with pytest.raises(TooManyBuckets):
        await _bucket(setup)
    rule = await _rule(setup, first)
    await _rule(setup, first, kind="fixed", amount=10)
    with pytest.raises(TooManyRules):
        await _rule(setup, first)
    await setup.service.delete_rule(
        setup.principal, customer_id=setup.customer, rule_id=decode_id("rul", rule.id)
    )
    await _rule(setup, first)
