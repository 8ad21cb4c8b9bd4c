"""What one gateway or worker process holds: its connections, opened and closed together,
and each domain's service built on exactly the connections it needs.

One ledger client (shared by every request: the TigerBeetle client batches concurrent
calls), one asyncpg pool, one Redis client, one batch writer per process. Domain code never
sees the `Runtime`: each domain's service gets its own dependencies when it is built here,
and only the edges (routes, the worker process, the CLI) pick a service from the runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg
import redis.asyncio as redis_asyncio
import structlog

from compliance.cases.service import Cases
from compliance.decisions import ComplianceCheck
from compliance.freezes.service import Freezes
from compliance.limits import DailyLimits
from compliance.setup import build_check
from fx.quoter import Quoter
from fx.quotes import QuoteStore
from fx.rates import RateBook
from fx.sources import HttpRateFeed, TableRateSource, default_table, parse_table
from gateway.batches.service import Batches
from gateway.buckets.service import Buckets
from gateway.collections.notifications import Intake
from gateway.collections.service import Collections
from gateway.collections.setup import CollectionsDomain
from gateway.collections.setup import build as build_collections
from gateway.customers.service import Customers
from gateway.forecasts.service import Forecasts
from gateway.funding.accounts import accounts_in_force
from gateway.funding.service import Funding
from gateway.http.auth import Authenticator
from gateway.http.idempotency import Idempotency, IdempotencyStore
from gateway.http.ratelimit import RateLimiter
from gateway.infra import outages
from gateway.infra.database.batch import BatchWriter
from gateway.infra.redis_pipelining import PipeliningRedis
from gateway.infra.sealing import BlindIndex, SecretBox, sandbox_key_material
from gateway.operations.service import Operations
from gateway.orchestrations.service import Orchestrations
from gateway.partners.service import PartnerLimits, Partners
from gateway.quotes.service import Quotes
from gateway.schedules.service import Schedules
from gateway.settings import Settings
from gateway.tenancy.pricing_cache import PricingCache
from gateway.tenancy.service import Tenancy
from gateway.transfers.admission import (
    AdmissionDependencies,
    TransferAdmission,
    payout_quote_margin_seconds,
)
from gateway.transfers.recipients import Recipients
from gateway.transfers.service import Transfers
from gateway.wallets.service import Wallets
from ledger import clients as ledger_clients
from ledger.buckets import BucketsLedger
from ledger.clients import LedgerClient
from ledger.currencies import CurrencyRegistry
from ledger.errors import LedgerUnavailable
from ledger.funding import BankFunding
from ledger.invariants import unreachable
from ledger.service import Ledger
from ledger.statements import Statements

if TYPE_CHECKING:
    from litestar import Request

default_database_url = "postgresql://postgres@127.0.0.1:5432/kovra"
default_redis_url = "redis://127.0.0.1:6379/0"
database_command_timeout_seconds = 10
redis_socket_timeout_seconds = 5
# Connections per process; a request needing one when all are busy waits up to the timeout.
redis_connections_max = 128
# How long start-up waits for its dependencies (the ledger, Postgres, Redis) while one does
# not answer yet, and the pause between attempts. A TigerBeetle cluster whose replicas all
# restarted at once answers only once they have recovered and chosen a primary, which can
# outlast one request's timeout; a Postgres that restarts runs its crash recovery before it
# takes connections; a Redis loads its data first. A process (re)started meanwhile that
# exited would be restarted by its supervisor and reported unhealthy meanwhile. Past the
# wait the process still exits: the dependency is really gone.
startup_wait_seconds_max = 120.0
startup_retry_delay_seconds = 1.0

log = structlog.get_logger("kovra.runtime")
T = TypeVar("T")


async def keep_session(connection: asyncpg.Connection) -> None:
    """What a pooled connection does on release, beyond asyncpg's own rollback of any
    transaction left open: nothing. asyncpg's default sends `RESET ALL`, `UNLISTEN *`,
    `CLOSE ALL` and `pg_advisory_unlock_all()`, a second round trip for every statement
    made through `pool.execute`. Nothing of ours leaves session state on a pooled
    connection (settings are `SET LOCAL`, advisory locks are transaction-scoped, cursors live
    inside transactions, nobody LISTENs), and `tests/gateway/test_runtime.py` checks it."""
    del connection


def _rate_source(settings: Settings, redis: redis_asyncio.Redis) -> TableRateSource | HttpRateFeed:
    if settings.fx_source == "http" and settings.fx_feed_url:
        return HttpRateFeed(settings.fx_feed_url, refresh_seconds=settings.fx_feed_refresh_seconds)
    return TableRateSource(redis)


async def _seed_rates(settings: Settings, source: TableRateSource | HttpRateFeed) -> None:
    """Configured rates replace the table's; a sandbox without them gets plausible defaults
    where the table has none. The feed starts its background refresh instead."""
    now = datetime.datetime.now(tz=datetime.UTC)
    if isinstance(source, HttpRateFeed):
        source.start()
    elif settings.fx_rates is not None:
        await source.set_rates(parse_table(settings.fx_rates), observed_at=now)
    elif settings.sandbox:
        await source.set_rates(default_table(now), observed_at=now, only_missing=True)


def open_ledger_client(settings: Settings) -> LedgerClient:
    """The process's ledger client, as `ledger.clients` chooses it from these settings."""
    return ledger_clients.open_ledger_client(
        tigerbeetle_addresses=settings.tb_addresses,
        cluster_id=settings.tb_cluster_id,
        ledger_address=settings.ledger_address,
        journal_path=settings.ledger_journal,
        timeout_ms=settings.ledger_timeout_ms,
    )


@dataclass(kw_only=True)
class Runtime:
    """The process's connections and shared services, and each domain's service."""

    settings: Settings
    ledger_client: LedgerClient
    ledger: Ledger
    pool: asyncpg.Pool
    redis: redis_asyncio.Redis
    writer: BatchWriter
    authenticator: Authenticator
    idempotency: Idempotency
    quoter: Quoter
    limits: DailyLimits
    secret_box: SecretBox
    blind_index: BlindIndex
    admission: TransferAdmission
    wallets: Wallets
    quotes: Quotes
    tenancy: Tenancy
    recipients: Recipients
    freezes: Freezes
    transfers: Transfers
    cases: Cases
    batches: Batches
    funding: Funding
    operations: Operations
    customers: Customers
    collections_domain: CollectionsDomain
    forecasts: Forecasts
    partners: Partners
    buckets: Buckets
    orchestrations: Orchestrations
    # What `close` undoes, in the reverse order of opening.
    closer: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    async def close(self) -> None:
        await self.partners.close()
        await self.closer.aclose()

    @functools.cached_property
    def schedules(self) -> Schedules:
        """Schedules start their occurrences' runs through the orchestrations service."""
        return Schedules(
            pool=self.pool,
            pulls=self.orchestrations,
            customers=self.customers,
            providers=self.collections_domain.providers,
        )

    @property
    def collections(self) -> Collections:
        return self.collections_domain.collections

    @property
    def provider_intake(self) -> Intake:
        return self.collections_domain.intake


async def open_runtime(
    settings: Settings,
    *,
    wait_seconds_max: float = startup_wait_seconds_max,
    retry_delay_seconds: float = startup_retry_delay_seconds,
) -> Runtime:
    """Open every connection and build every domain on them. While a dependency does not
    answer yet, the whole opening is tried again (after closing what it opened), for up to
    `wait_seconds_max`; every step of it is safe to repeat. Any other failure, and the last
    one once the wait is over, closes what was opened and is raised."""
    return await when_answering(
        lambda: _open_runtime_once(settings),
        wait_seconds_max=wait_seconds_max,
        retry_delay_seconds=retry_delay_seconds,
    )


async def _open_runtime_once(settings: Settings) -> Runtime:
    async with contextlib.AsyncExitStack() as stack:
        connections = await _open_connections(settings, stack)
        ledger = Ledger(connections.ledger_client, CurrencyRegistry(settings.currencies))
        rate_source = _rate_source(settings, connections.redis)
        if isinstance(rate_source, HttpRateFeed):
            stack.push_async_callback(rate_source.close)
        await ledger.open_platform_accounts()
        await _seed_rates(settings, rate_source)
        compliance, lists = await build_check(settings, connections.pool)
        if lists is not None:
            refresh = asyncio.get_running_loop().create_task(lists.run_forever())
            stack.push_async_callback(_cancel, refresh)
        runtime = _assemble(
            settings,
            connections,
            ledger=ledger,
            rate_source=rate_source,
            compliance=compliance,
        )
        runtime.closer = stack.pop_all()
        return runtime
    unreachable("the exit stack re-raises whatever stopped the opening")


@dataclass(kw_only=True, frozen=True)
class _Connections:
    ledger_client: LedgerClient
    pool: asyncpg.Pool
    redis: redis_asyncio.Redis
    writer: BatchWriter
    secret_box: SecretBox
    blind_index: BlindIndex
    key_material: str


async def _open_connections(settings: Settings, stack: contextlib.AsyncExitStack) -> _Connections:
    """The ledger client, the Postgres pool, Redis and the batch writer, each closed by
    `stack` (the writer drained first)."""
    # Production requires KOVRA_SECRETS_KEY (gateway.settings); the sandbox keeps a key file.
    key_material = settings.secrets_key or sandbox_key_material(settings.data_dir)
    secret_box = SecretBox(key_material, previous=settings.secrets_keys_previous)
    blind_index = BlindIndex(key_material, previous=settings.secrets_keys_previous)
    ledger_client = open_ledger_client(settings)
    stack.push_async_callback(ledger_client.close)
    # A blocking pool: under a burst, a request waits (bounded) for a free connection
    # instead of failing with "Too many connections", which the default pool raises at once.
    # The commands of one event-loop turn share a pipeline (gateway.infra.redis_pipelining).
    redis = PipeliningRedis.from_pool(
        redis_asyncio.BlockingConnectionPool.from_url(
            settings.redis_url or default_redis_url,
            max_connections=redis_connections_max,
            timeout=redis_socket_timeout_seconds,
            socket_timeout=redis_socket_timeout_seconds,
            socket_connect_timeout=redis_socket_timeout_seconds,
        )
    )
    stack.push_async_callback(redis.aclose)
    pool = await asyncpg.create_pool(
        settings.database_url or default_database_url,
        min_size=1,
        max_size=settings.database_pool_size,
        command_timeout=database_command_timeout_seconds,
        reset=keep_session,
    )
    stack.push_async_callback(pool.close)
    writer = BatchWriter(pool)
    stack.push_async_callback(writer.drain)
    return _Connections(
        ledger_client=ledger_client,
        pool=pool,
        redis=redis,
        writer=writer,
        secret_box=secret_box,
        blind_index=blind_index,
        key_material=key_material,
    )


@dataclass(kw_only=True, frozen=True)
class _Shared:
    """What several domains share: the quote store and the quoter on the rate book, the
    daily limits, the rate limiter, each tenant's terms and the admission script."""

    quote_store: QuoteStore
    book: RateBook
    quoter: Quoter
    limits: DailyLimits
    limiter: RateLimiter
    pricing: PricingCache
    admission: TransferAdmission


def _shared(
    settings: Settings,
    connections: _Connections,
    *,
    ledger: Ledger,
    rate_source: TableRateSource | HttpRateFeed,
) -> _Shared:
    redis = connections.redis
    quote_store = QuoteStore(redis, record_grace_seconds=settings.quote_record_grace_seconds)
    limits = DailyLimits(redis)
    book = RateBook(rate_source, max_age_seconds=settings.fx_max_age_seconds)
    return _Shared(
        quote_store=quote_store,
        book=book,
        quoter=Quoter(
            book=book,
            store=quote_store,
            currencies=ledger.currencies,
            ttl_seconds=settings.quote_ttl_seconds,
        ),
        limits=limits,
        limiter=RateLimiter(redis),
        pricing=PricingCache(connections.pool),
        admission=TransferAdmission(
            redis,
            quotes=quote_store,
            limits=limits,
            remember_quote_seconds=settings.reconcile_after_seconds + payout_quote_margin_seconds,
        ),
    )


def _assemble(
    settings: Settings,
    connections: _Connections,
    *,
    ledger: Ledger,
    rate_source: TableRateSource | HttpRateFeed,
    compliance: ComplianceCheck,
) -> Runtime:
    """Every domain's service, each given exactly what it needs."""
    pool, redis, writer = connections.pool, connections.redis, connections.writer
    shared = _shared(settings, connections, ledger=ledger, rate_source=rate_source)
    tenancy = Tenancy(pool=pool, ledger=ledger, limiter=shared.limiter)
    recipients = Recipients(pool=pool, redis=redis, screener=compliance)
    customers = Customers(pool=pool, box=connections.secret_box, index=connections.blind_index)
    partners = _partners(settings, connections, ledger)
    buckets = _buckets(settings, pool, ledger, customers, partners)
    return Runtime(
        settings=settings,
        ledger_client=connections.ledger_client,
        ledger=ledger,
        pool=pool,
        redis=redis,
        writer=writer,
        authenticator=Authenticator(
            limiter=shared.limiter,
            pool=pool,
            jwt_secret=settings.jwt_secret,
            admin_token=settings.admin_token,
        ),
        idempotency=Idempotency(
            IdempotencyStore(redis, lease_ms=settings.idempotency_lease_seconds * 1000), writer
        ),
        quoter=shared.quoter,
        limits=shared.limits,
        secret_box=connections.secret_box,
        blind_index=connections.blind_index,
        admission=shared.admission,
        wallets=Wallets(
            ledger=ledger,
            ledger_client=connections.ledger_client,
            statements=Statements(ledger),
            pool=pool,
            writer=writer,
            sandbox=settings.sandbox,
        ),
        quotes=Quotes(
            quoter=shared.quoter,
            pricing=shared.pricing,
            currencies=ledger.currencies,
            rate_source=rate_source,
            pool=pool,
        ),
        tenancy=tenancy,
        recipients=recipients,
        freezes=Freezes(pool=pool, tenancy=tenancy, recipients=recipients),
        transfers=_transfers(connections, shared, ledger, recipients, compliance),
        cases=Cases(pool=pool, ledger=ledger),
        batches=_batches(connections, shared, ledger, compliance),
        funding=_funding(settings, connections, ledger),
        operations=Operations(pool=pool),
        customers=customers,
        forecasts=Forecasts(pool=pool, customers=customers),
        collections_domain=_collections(settings, connections, ledger, customers),
        partners=partners,
        buckets=buckets,
        orchestrations=Orchestrations(pool=pool, customers=customers, lines=buckets),
    )


def _collections(
    settings: Settings, connections: _Connections, ledger: Ledger, customers: Customers
) -> CollectionsDomain:
    return build_collections(
        settings,
        pool=connections.pool,
        redis=connections.redis,
        ledger=ledger,
        secret_box=connections.secret_box,
        key_material=connections.key_material,
        customers=customers,
    )


def _buckets(
    settings: Settings,
    pool: asyncpg.Pool,
    ledger: Ledger,
    customers: Customers,
    partners: Partners,
) -> Buckets:
    return Buckets(
        pool=pool,
        ledger=BucketsLedger(ledger),
        currencies=ledger.currencies,
        customers=customers,
        partners=partners,
        buckets_per_customer_max=settings.buckets_per_customer_max,
        rules_per_customer_max=settings.rules_per_customer_max,
    )


def _funding(settings: Settings, connections: _Connections, ledger: Ledger) -> Funding:
    return Funding(
        pool=connections.pool,
        bank=BankFunding(connections.ledger_client, ledger.currencies),
        currencies=ledger.currencies,
        accounts=accounts_in_force(
            settings.settlement_accounts, sandbox=settings.sandbox, currencies=ledger.currencies
        ),
    )


def _partners(settings: Settings, connections: _Connections, ledger: Ledger) -> Partners:
    return Partners(
        pool=connections.pool,
        redis=connections.redis,
        box=connections.secret_box,
        currencies=ledger.currencies,
        sandbox=settings.sandbox,
        limits=PartnerLimits(
            timeout_ms=settings.partner_timeout_ms,
            send_tries_max=settings.partner_send_tries_max,
        ),
    )


def _transfers(
    connections: _Connections,
    shared: _Shared,
    ledger: Ledger,
    recipients: Recipients,
    compliance: ComplianceCheck,
) -> Transfers:
    admission = AdmissionDependencies(
        admission=shared.admission,
        recipients=recipients,
        rates=shared.book,
        currencies=ledger.currencies,
    )
    return Transfers(
        pool=connections.pool,
        writer=connections.writer,
        ledger=ledger,
        admission=admission,
        compliance=compliance,
        limits=shared.limits,
        pricing=shared.pricing,
        quotes=shared.quote_store,
    )


def _batches(
    connections: _Connections, shared: _Shared, ledger: Ledger, compliance: ComplianceCheck
) -> Batches:
    return Batches(
        pool=connections.pool,
        writer=connections.writer,
        redis=connections.redis,
        ledger=ledger,
        compliance=compliance,
        limits=shared.limits,
        pricing=shared.pricing,
        quoter=shared.quoter,
    )


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def unanswering_dependency(error: BaseException) -> str | None:
    """The dependency `error` says does not answer yet (`ledger`, `redis`, `postgres`), or
    None when it says something else: a misconfiguration or a bug, not worth waiting for."""
    if isinstance(error, LedgerUnavailable):
        return "ledger"
    if isinstance(error, outages.redis_unavailable):
        return "redis"
    if isinstance(error, outages.postgres_unavailable):
        return "postgres"
    return None


async def when_answering(
    attempt: Callable[[], Awaitable[T]],
    *,
    wait_seconds_max: float = startup_wait_seconds_max,
    retry_delay_seconds: float = startup_retry_delay_seconds,
) -> T:
    """`attempt()`, repeated while it fails because a dependency does not answer yet
    (`unanswering_dependency`), for up to `wait_seconds_max`, each time logging
    `<dependency>_not_answering_at_startup`; the last failure is raised once the wait is
    over, any other failure at once. The attempts must be safe to repeat."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds_max
    attempt_number = 1
    while True:
        try:
            return await attempt()
        except Exception as error:
            dependency = unanswering_dependency(error)
            if dependency is None or loop.time() + retry_delay_seconds >= deadline:
                raise
            log.warning(
                f"{dependency}_not_answering_at_startup",
                attempt=attempt_number,
                error=str(error) or type(error).__name__,
                retry_in_seconds=retry_delay_seconds,
            )
        await asyncio.sleep(retry_delay_seconds)
        attempt_number += 1


def runtime_of(request: Request[Any, Any, Any]) -> Runtime:
    """The process's runtime, for a route to pick its domain's service from."""
    runtime: Runtime = request.app.state.runtime
    return runtime
