"""Everything a run touches, in this process: real Postgres and Redis, the embedded ledger,
the sandbox mandate providers and partners, and the real services of customers,
collections, buckets and partners; a tenant with a customer and a mandate active at its
provider; and the steps a test drives a run through (the provider's notification is stored
as the intake stores a verified one)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import asyncpg
from redis.asyncio import Redis

from gateway.buckets import wire as bucket_wire
from gateway.buckets.service import Buckets
from gateway.collections.service import Collections
from gateway.collections.worker import CollectionsWorker
from gateway.customers import wire as customer_wire
from gateway.customers.service import Customers
from gateway.http.ids import decode_id, encode_id
from gateway.http.ratelimit import Principal
from gateway.infra.sealing import BlindIndex
from gateway.orchestrations import wire
from gateway.orchestrations.records import OrchestrationRow, get_orchestration
from gateway.orchestrations.service import Orchestrations
from gateway.orchestrations.worker import OrchestrationsWorker
from gateway.partners import wire as partner_wire
from gateway.partners.service import PartnerLimits, Partners
from gateway.tenancy.records import create_tenant
from ledger.buckets import BucketBalance, BucketsLedger
from ledger.transfers import new_object_id
from tests.gateway.collections.fixtures import Domain, make_domain, secret_box

blind_index = BlindIndex("orchestrations-tests-index-material-0123456789")
rule_priority_step = 10


@dataclass(frozen=True)
class Target:
    """A bucket of the flow's customer, with its partner when it has one."""

    bucket_id: int
    sub_account: int
    partner_id: int | None
    partner_ledger_number: int | None


@dataclass
class Flow:
    pool: asyncpg.Pool
    redis: Redis
    namespace: str
    domain: Domain
    customers: Customers
    collections: Collections
    collections_worker: CollectionsWorker
    buckets: Buckets
    buckets_ledger: BucketsLedger
    partners: Partners
    orchestrations: Orchestrations
    worker: OrchestrationsWorker
    principal: Principal
    customer_id: int
    mandate_id: int
    worker_attempts_max: int
    rules: int = 0

    @property
    def tenant_id(self) -> int:
        return self.principal.tenant_id

    async def customer(self) -> int:
        customer_id = new_object_id()
        await self.customers.create(
            tenant_id=self.tenant_id,
            region="EU",
            customer_id=customer_id,
            body=customer_wire.CustomerCreate(name="Erika Mustermann", country="DE"),
        )
        return customer_id

    async def target(
        self,
        kind: str,
        *,
        partner_reference: str | None,
        percent_bps: int | None = None,
        amount: int | None = None,
    ) -> Target:
        """A bucket (paid on to a sandbox partner answering by `partner_reference`, when
        given) and a rule filling it: a percentage or a fixed amount, after the rules made
        before it."""
        partner = None
        if partner_reference is not None:
            partner, _ = await self.partners.create(
                self.principal,
                partner_id=new_object_id(),
                body=partner_wire.PartnerCreate(
                    kind=kind,  # type: ignore[arg-type]
                    name=f"{kind} partner",
                    currency="EUR",
                    adapter="sandbox",
                    reference=partner_reference,
                ),
            )
        customer = encode_id("cus", self.customer_id)
        bucket = await self.buckets.create_bucket(
            self.principal,
            customer_id=self.customer_id,
            bucket_id=new_object_id(),
            body=bucket_wire.BucketCreate(
                kind=kind,  # type: ignore[arg-type]
                name=kind,
                currency="EUR",
                partner_id=None if partner is None else encode_id("ptn", partner.id.int),
            ),
        )
        self.rules += 1
        await self.buckets.create_rule(
            self.principal,
            customer_id=self.customer_id,
            rule_id=new_object_id(),
            body=bucket_wire.RuleCreate(
                bucket_id=bucket.id,
                kind="percentage" if percent_bps is not None else "fixed",
                priority=self.rules * rule_priority_step,
                percent_bps=percent_bps,
                amount=amount,
            ),
        )
        del customer
        sub_account = await self.pool.fetchval(
            "SELECT sub_account FROM buckets WHERE id = $1", uuid.UUID(int=raw_id(bucket.id))
        )
        return Target(
            bucket_id=raw_id(bucket.id),
            sub_account=int(sub_account),
            partner_id=None if partner is None else partner.id.int,
            partner_ledger_number=None if partner is None else partner.ledger_number,
        )

    async def balances(self, targets: Sequence[Target]) -> list[BucketBalance]:
        return await self.buckets_ledger.balances(
            tenant_id=self.tenant_id,
            currency_code="EUR",
            sub_accounts=[target.sub_account for target in targets],
        )

    def another_worker(self) -> OrchestrationsWorker:
        """A second worker process's passes, on the same services."""
        return OrchestrationsWorker(
            pool=self.pool,
            collections=self.collections,
            buckets=self.buckets,
            ledger=self.buckets_ledger,
            partners=self.partners,
            partner_attempts_max=self.worker_attempts_max,
            partner_retry_base_seconds=0,
        )

    async def run(self, run_id: int) -> OrchestrationRow:
        found = await get_orchestration(
            self.pool, region="EU", tenant_id=self.tenant_id, orchestration_id=uuid.UUID(int=run_id)
        )
        assert found is not None
        return found

    async def pull(self, amount_minor: int) -> int:
        run_id = new_object_id()
        await self.orchestrations.pull(
            self.principal,
            customer_id=self.customer_id,
            mandate_id=self.mandate_id,
            orchestration_id=run_id,
            body=wire.PullCreate(mandate_id=encode_id("mdt", self.mandate_id), amount=amount_minor),
        )
        return run_id

    async def collected(self, run_id: int, *, notice: str = "succeeded") -> str:
        """Create the run's collection, send it to its provider, and apply the provider's
        `collection.<notice>`; the provider's reference of the collection."""
        assert await self.worker.collect() >= 1
        await self.collections_worker.run_collections()
        run = await self.run(run_id)
        reference = await self.pool.fetchval(
            "SELECT provider_reference FROM collections WHERE id = $1", run.collection_id
        )
        assert reference is not None
        await self.domain.notify(reference, f"collection.{notice}", event_id=f"evt-{reference}")
        await self.domain.applier.apply()
        return str(reference)

    async def until_still(self) -> None:
        """Passes until one does nothing."""
        for _ in range(20):
            if await self.worker.process_due() == 0:
                return
        raise AssertionError("the worker kept finding work")


async def make_flow(
    pool: asyncpg.Pool, redis: Redis, namespace: str, *, partner_attempts_max: int = 3
) -> AsyncIterator[Flow]:
    domain = await make_domain(pool, redis, namespace)
    # A tenant of the database too (partners name theirs), whose ledger accounts are open.
    tenant = await create_tenant(pool, name="orchestrations", tier="growth", compliance_region="EU")
    await domain.world.ledger.open_tenant_accounts(tenant.id)
    domain.world.tenant_id = tenant_id = tenant.id
    customers = Customers(pool=pool, box=secret_box, index=blind_index)
    collections = Collections(
        pool=pool,
        redis=redis,
        secret_box=secret_box,
        currencies=domain.world.ledger.currencies,
        providers=domain.providers,
        customers=customers,
        applier=domain.applier,
        lookup_after_seconds=600,
    )
    collections_worker = CollectionsWorker(
        pool=pool, providers=domain.providers, secret_box=secret_box, applier=domain.applier
    )
    buckets_ledger = BucketsLedger(domain.world.ledger)
    partners = Partners(
        pool=pool,
        redis=redis,
        box=secret_box,
        currencies=domain.world.ledger.currencies,
        sandbox=True,
        namespace=namespace,
        limits=PartnerLimits(send_tries_max=1, retry_base_ms=1),
    )
    buckets = Buckets(
        pool=pool,
        ledger=buckets_ledger,
        currencies=domain.world.ledger.currencies,
        customers=customers,
        partners=partners,
        buckets_per_customer_max=20,
        rules_per_customer_max=20,
    )
    principal = Principal(
        tenant_id=tenant_id, role="admin", key_id=1, compliance_region="EU", status="active"
    )
    flow = Flow(
        pool=pool,
        redis=redis,
        namespace=namespace,
        domain=domain,
        customers=customers,
        collections=collections,
        collections_worker=collections_worker,
        buckets=buckets,
        buckets_ledger=buckets_ledger,
        partners=partners,
        orchestrations=Orchestrations(pool=pool, customers=customers, lines=buckets),
        worker=OrchestrationsWorker(
            pool=pool,
            collections=collections,
            buckets=buckets,
            ledger=buckets_ledger,
            partners=partners,
            partner_attempts_max=partner_attempts_max,
            partner_retry_base_seconds=0,
        ),
        principal=principal,
        customer_id=0,
        mandate_id=0,
        worker_attempts_max=partner_attempts_max,
    )
    flow.customer_id = await flow.customer()
    flow.mandate_id = await _active_mandate(flow)
    try:
        yield flow
    finally:
        await partners.close()


async def _active_mandate(flow: Flow) -> int:
    """A mandate of the flow's customer, active in Kovra and at the sandbox provider."""
    mandate = await flow.domain.mandate(status="pending")
    await flow.pool.execute(
        "UPDATE mandates SET provider_reference = NULL, customer_id = $2 WHERE id = $1",
        mandate.id,
        uuid.UUID(int=flow.customer_id),
    )
    await flow.collections_worker.submit_mandates()
    await flow.pool.execute("UPDATE mandates SET status = 'active' WHERE id = $1", mandate.id)
    return mandate.id.int


def raw_id(public_id: str) -> int:
    """The object id of a public id (`bkt_...` → its 128 bits)."""
    prefix, _, _ = public_id.partition("_")
    return decode_id(prefix, public_id)
