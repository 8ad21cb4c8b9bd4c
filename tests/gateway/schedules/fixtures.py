"""A tenant's customer with active mandates at the sandbox providers, and the schedules
service on real Postgres and Redis with the real orchestrations service (whose `start` and
`check_pull` schedules use). Reading a run's allocation lines is not part of what schedules
do, so the orchestrations service is given none to read."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
from redis.asyncio import Redis

from gateway.collections import records as collection_records
from gateway.collections.sealed import seal_mandate_details
from gateway.customers import wire as customer_wire
from gateway.customers.service import Customers
from gateway.http.ratelimit import Principal
from gateway.infra.sealing import BlindIndex
from gateway.orchestrations.service import Orchestrations
from gateway.schedules import wire
from gateway.schedules.service import Schedules
from ledger.transfers import new_object_id
from rails.collections.provider import MandateProvider, MandateRequest
from rails.collections.providers import build_sandbox_providers
from rails.collections.sandbox import mandate_reference
from rails.collections.sepa_dd import sandbox_creditor
from tests.gateway.collections.fixtures import iban, secret_box

blind_index = BlindIndex("schedules-tests-index-material-0123456789")


class NoLines:
    """A run's allocation lines, which no test here reads."""

    async def lines(self, *, orchestration_id: uuid.UUID) -> Sequence[object]:
        del orchestration_id
        raise NotImplementedError("schedules never read a run's lines")


@dataclass
class Setting:
    pool: asyncpg.Pool
    providers: dict[str, MandateProvider]
    customers: Customers
    orchestrations: Orchestrations
    principal: Principal
    customer_id: int

    def schedules(self, *, batch_size: int = 500) -> Schedules:
        return Schedules(
            pool=self.pool,
            pulls=self.orchestrations,
            customers=self.customers,
            providers=self.providers,
            batch_size=batch_size,
        )

    async def mandate(self, *, reference: str = "gym 7", status: str = "active") -> int:
        """A SEPA mandate of the customer, set up at the sandbox with `reference` and stored
        with `status`."""
        mandate_id = new_object_id()
        row_id = uuid.UUID(int=mandate_id)
        await collection_records.insert_mandate(
            self.pool,
            collection_records.NewMandate(
                compliance_region="EU",
                id=row_id,
                tenant_id=self.principal.tenant_id,
                customer_id=uuid.UUID(int=self.customer_id),
                provider="sepa_dd",
                currency="EUR",
                reference=reference,
                bank_details_sealed=seal_mandate_details(
                    secret_box, {"iban": iban}, "Erika Mustermann", mandate_id=row_id
                ),
                bank_details_masked={"iban": "••••3000"},
                consent_accepted_at=datetime.datetime.now(tz=datetime.UTC),
                consent_ip="203.0.113.7",
                consent_user_agent="tests",
            ),
        )
        await self.providers["sepa_dd"].create_mandates(
            [
                MandateRequest(
                    mandate_id=mandate_id,
                    currency="EUR",
                    reference=reference,
                    bank_details={"iban": iban},
                    account_holder_name="Erika Mustermann",
                    consent_accepted_at=datetime.datetime.now(tz=datetime.UTC),
                )
            ]
        )
        await self.pool.execute(
            "UPDATE mandates SET status = $2, provider_reference = $3 WHERE id = $1",
            row_id,
            status,
            mandate_reference(mandate_id),
        )
        return mandate_id

    async def create(
        self, schedules: Schedules, body: wire.ScheduleCreate, **kw: object
    ) -> wire.Schedule:
        return await schedules.create(
            self.principal,
            customer_id=self.customer_id,
            schedule_id=new_object_id(),
            body=body,
            **kw,  # type: ignore[arg-type]
        )

    async def runs(self) -> list[asyncpg.Record]:
        return await self.pool.fetch(
            """SELECT id, trigger, schedule_id, occurrence_at, amount_minor, status
                 FROM orchestrations WHERE tenant_id = $1 ORDER BY occurrence_at""",
            self.principal.tenant_id,
        )


async def make_setting(pool: asyncpg.Pool, redis: Redis, namespace: str) -> Setting:
    built = build_sandbox_providers(
        redis=redis, creditor=sandbox_creditor, namespace=namespace, notification_delay_ms=0
    )
    providers = {name.value: provider for name, provider in built.items()}
    customers = Customers(pool=pool, box=secret_box, index=blind_index)
    principal = Principal(
        tenant_id=new_object_id() >> 65,
        role="admin",
        key_id=7,
        compliance_region="EU",
        status="active",
    )
    customer_id = new_object_id()
    await customers.create(
        tenant_id=principal.tenant_id,
        region="EU",
        customer_id=customer_id,
        body=customer_wire.CustomerCreate(name="Erika Mustermann", country="DE"),
    )
    orchestrations = Orchestrations(pool=pool, customers=customers, lines=NoLines())  # type: ignore[arg-type]
    return Setting(
        pool=pool,
        providers=providers,
        customers=customers,
        orchestrations=orchestrations,
        principal=principal,
        customer_id=customer_id,
    )
