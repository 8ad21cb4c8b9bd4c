"""Mandates and collections made straight in the database, for the domain's tests that
start from a given state (an active mandate, a submitted collection) rather than walk the
API there; a ledger with a funded tenant for their money; and customers' names as the
customers domain answers them (its own tests are its own)."""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass

import asyncpg
import msgspec
from redis.asyncio import Redis

from gateway.collections import records
from gateway.collections.applying import Applier
from gateway.collections.notifications import store, synthetic_body
from gateway.collections.sealed import seal_mandate_details
from gateway.collections.service import end_to_end_id
from gateway.infra.sealing import SecretBox
from ledger.clients import EmbeddedClient
from ledger.collections import CollectionsLedger
from ledger.errors import DomainError
from ledger.transfers import new_object_id
from rails.collections.provider import MandateProvider, ProviderName, ProviderNotification
from rails.collections.providers import build_sandbox_providers
from rails.collections.sepa_dd import sandbox_creditor
from tests.ledger.fixtures import World, make_world

secret_box = SecretBox("collections-tests-key-material-0123456789")
iban = "DE89370400440532013000"


class Customers:
    """Customers by (tenant, id), as the customers domain answers them."""

    class Record(msgspec.Struct, frozen=True, kw_only=True):
        name: str

    class NotFound(DomainError):
        code = "not_found"

    def __init__(self) -> None:
        self.known: dict[tuple[int, int], Customers.Record] = {}

    async def get(self, *, tenant_id: int, customer_id: int) -> Customers.Record:
        found = self.known.get((tenant_id, customer_id))
        if found is None:
            raise Customers.NotFound("no such customer")
        return found


@dataclass
class Domain:
    pool: asyncpg.Pool
    world: World
    ledger: CollectionsLedger
    providers: dict[str, MandateProvider]
    applier: Applier

    async def mandate(
        self, *, status: str = "active", provider: str = "sepa_dd"
    ) -> records.MandateRow:
        mandate_id = uuid.UUID(int=new_object_id())
        row = await records.insert_mandate(
            self.pool,
            records.NewMandate(
                compliance_region="EU",
                id=mandate_id,
                tenant_id=self.world.tenant_id,
                customer_id=uuid.uuid4(),
                provider=provider,
                currency="EUR",
                reference="gym 7",
                bank_details_sealed=seal_mandate_details(
                    secret_box, {"iban": iban}, "Erika Mustermann", mandate_id=mandate_id
                ),
                bank_details_masked={"iban": "••••3000"},
                consent_accepted_at=datetime.datetime.now(tz=datetime.UTC),
                consent_ip="203.0.113.7",
                consent_user_agent="tests",
            ),
        )
        assert row is not None
        await self.pool.execute(
            "UPDATE mandates SET status = $2, provider_reference = $3 WHERE id = $1",
            mandate_id,
            status,
            f"MDT-{mandate_id.hex[:12]}",
        )
        found = await records.get_mandate(
            self.pool, region="EU", tenant_id=row.tenant_id, mandate_id=mandate_id
        )
        assert found is not None
        return found

    async def collection(
        self, mandate: records.MandateRow, amount_minor: int
    ) -> records.CollectionRow:
        """A collection its provider accepted (it has a provider reference)."""
        object_id = new_object_id()
        row = await records.insert_collection(
            self.pool,
            records.NewCollection(
                compliance_region="EU",
                id=uuid.UUID(int=object_id),
                tenant_id=mandate.tenant_id,
                mandate_id=mandate.id,
                provider=mandate.provider,
                currency=mandate.currency,
                amount_minor=amount_minor,
                reference="January",
                end_to_end_id=end_to_end_id(object_id),
                collection_date=datetime.datetime.now(tz=datetime.UTC).date(),
            ),
        )
        assert row is not None
        await self.pool.execute(
            """UPDATE collections SET provider_reference = $2, submitted_at = now(),
                      sequence_type = 'first' WHERE id = $1""",
            row.id,
            f"COL-{row.id.hex[:12]}",
        )
        return await self.read(row)

    async def read_mandate(self, mandate_id: uuid.UUID) -> records.MandateRow:
        found = await records.get_mandate(
            self.pool, region="EU", tenant_id=self.world.tenant_id, mandate_id=mandate_id
        )
        assert found is not None
        return found

    async def read(self, row: records.CollectionRow) -> records.CollectionRow:
        found = await records.get_collection(
            self.pool, region="EU", tenant_id=row.tenant_id, collection_id=row.id
        )
        assert found is not None
        return found

    async def notify(
        self,
        reference: str,
        notification_type: str,
        *,
        event_id: str | None = None,
        reason_code: str | None = None,
        provider: str = "sepa_dd",
        amount_minor: int | None = None,
    ) -> bool:
        """Store a provider's notification as the intake does once it is verified; whether
        it was stored now."""
        notification = ProviderNotification(
            provider=ProviderName(provider),
            event_id=event_id or f"evt-{uuid.uuid4().hex}",
            type=notification_type,  # type: ignore[arg-type]
            provider_reference=reference,
            amount_minor=amount_minor,
            currency="EUR",
            reason_code=reason_code,
        )
        stored, _ = await store(self.pool, notification, body=synthetic_body(notification))
        return stored

    async def wallet_posted(self) -> int:
        return (await self.world.balance("EUR")).posted


async def make_domain(
    pool: asyncpg.Pool, redis: Redis, namespace: str, *, notification_delay_ms: int = 0
) -> Domain:
    """The domain over a fresh ledger and the sandbox providers, whose outcomes take effect
    `notification_delay_ms` after each request."""
    world = await make_world(EmbeddedClient(), {})
    built = build_sandbox_providers(
        redis=redis,
        creditor=sandbox_creditor,
        namespace=namespace,
        notification_delay_ms=notification_delay_ms,
        return_delay_ms=0,
    )
    providers = {name.value: provider for name, provider in built.items()}
    ledger = CollectionsLedger(world.ledger)
    return Domain(
        pool=pool,
        world=world,
        ledger=ledger,
        providers=providers,
        applier=Applier(pool=pool, ledger=ledger, providers=providers),
    )
