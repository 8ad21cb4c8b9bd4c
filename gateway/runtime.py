"""The per-process connections a gateway or worker needs, opened and closed together.

One ledger client (shared by every request: the TigerBeetle client batches concurrent
calls), one asyncpg pool, one Redis client, one batch writer per process.
"""

from __future__ import annotations

import asyncio
import datetime
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import asyncpg
import redis.asyncio as redis_asyncio
import structlog

from compliance.checks import NoOpCheck
from compliance.decisions import ComplianceCheck
from compliance.limits import DailyLimits
from compliance.setup import build_check
from fx.quoter import Quoter
from fx.quotes import QuoteStore
from fx.rates import RateBook
from fx.sources import HttpRateFeed, TableRateSource, default_table, parse_table
from gateway.http.idempotency import IdempotencyStore
from gateway.http.ratelimit import RateLimiter
from gateway.infra.database.batch import BatchWriter
from gateway.infra.redis_pipelining import PipeliningRedis
from gateway.infra.sealing import SecretBox, sandbox_key_material
from gateway.settings import Settings
from gateway.tenancy.pricing_cache import PricingCache
from ledger import clients as ledger_clients
from ledger.clients import LedgerClient
from ledger.currencies import CurrencyRegistry
from ledger.errors import LedgerUnavailable
from ledger.service import Ledger
from ledger.statements import Statements

if TYPE_CHECKING:
    from gateway.transfers.admission import TransferAdmission

default_database_url = "postgresql://postgres@127.0.0.1:5432/kovra"
default_redis_url = "redis://127.0.0.1:6379/0"
database_command_timeout_seconds = 10
redis_socket_timeout_seconds = 5
# Connections per process; a request needing one when all are busy waits up to the timeout.
redis_connections_max = 128
# How long start-up waits for a ledger that does not answer yet, and the pause between its
# attempts. A TigerBeetle cluster whose replicas all restarted at once answers only once
# they have recovered and chosen a primary, which can outlast one request's timeout; a
# gateway that exited then would be restarted by its supervisor and reported unhealthy
# meanwhile. Past the wait the process still exits: the ledger is really gone.
ledger_startup_wait_seconds_max = 120.0
ledger_startup_retry_delay_seconds = 1.0

log = structlog.get_logger("kovra.services")


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


@dataclass
class Services:
    settings: Settings
    ledger_client: LedgerClient
    ledger: Ledger
    statements: Statements
    pool: asyncpg.Pool
    redis: redis_asyncio.Redis
    writer: BatchWriter
    limiter: RateLimiter
    idempotency: IdempotencyStore
    rate_source: TableRateSource | HttpRateFeed
    quoter: Quoter
    pricing: PricingCache
    compliance: ComplianceCheck
    limits: DailyLimits
    secret_box: SecretBox
    admission: TransferAdmission
    # Background tasks owned by these services (the sanctions-list refresh), cancelled on close.
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if isinstance(self.rate_source, HttpRateFeed):
            await self.rate_source.close()
        await self.writer.drain()
        await self.pool.close()
        await self.redis.aclose()
        await self.ledger_client.close()


async def open_services(settings: Settings) -> Services:
    """Open every connection; on failure close what was opened and re-raise."""
    # Production requires KOVRA_SECRETS_KEY (gateway.settings); the sandbox keeps a key file.
    secret_box = SecretBox(
        settings.secrets_key or sandbox_key_material(settings.data_dir),
        previous=settings.secrets_keys_previous,
    )
    ledger_client = open_ledger_client(settings)
    try:
        pool = await asyncpg.create_pool(
            settings.database_url or default_database_url,
            min_size=1,
            max_size=settings.database_pool_size,
            command_timeout=database_command_timeout_seconds,
            reset=keep_session,
        )
    except BaseException:
        await ledger_client.close()
        raise
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
    currencies = CurrencyRegistry(settings.currencies)
    ledger = Ledger(ledger_client, currencies)
    rate_source = _rate_source(settings, redis)
    quotes = QuoteStore(redis, record_grace_seconds=settings.quote_record_grace_seconds)
    limits = DailyLimits(redis)
    # The transfer path's module needs these services to be defined first.
    from gateway.transfers.admission import (  # noqa: PLC0415
        TransferAdmission,
        payout_quote_margin_seconds,
    )

    services = Services(
        settings=settings,
        ledger_client=ledger_client,
        ledger=ledger,
        statements=Statements(ledger),
        pool=pool,
        redis=redis,
        writer=BatchWriter(pool),
        limiter=RateLimiter(redis),
        idempotency=IdempotencyStore(redis),
        rate_source=rate_source,
        quoter=Quoter(
            book=RateBook(rate_source, max_age_seconds=settings.fx_max_age_seconds),
            store=quotes,
            currencies=currencies,
            ttl_seconds=settings.quote_ttl_seconds,
        ),
        pricing=PricingCache(pool),
        compliance=NoOpCheck(),  # Replaced below, once Postgres can be read.
        limits=limits,
        secret_box=secret_box,
        admission=TransferAdmission(
            redis,
            quotes=quotes,
            limits=limits,
            remember_quote_seconds=settings.reconcile_after_seconds + payout_quote_margin_seconds,
        ),
    )
    try:
        await open_platform_accounts_when_answering(ledger)
        await _seed_rates(settings, rate_source)
        services.compliance, lists = await build_check(settings, pool)
        if lists is not None:
            services.tasks.append(asyncio.get_running_loop().create_task(lists.run_forever()))
    except BaseException:
        await services.close()
        raise
    return services


async def open_platform_accounts_when_answering(
    ledger: Ledger,
    *,
    wait_seconds_max: float = ledger_startup_wait_seconds_max,
    retry_delay_seconds: float = ledger_startup_retry_delay_seconds,
) -> None:
    """Open the platform's accounts, the process's first ledger request, retrying while the
    ledger is unavailable for up to `wait_seconds_max`. Opening is idempotent (accounts that
    exist are taken as they are), so an attempt that timed out after the ledger applied it
    is harmless to repeat. Any other ledger error is raised at once."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds_max
    attempt = 1
    while True:
        try:
            await ledger.open_platform_accounts()
        except LedgerUnavailable as error:
            if loop.time() + retry_delay_seconds >= deadline:
                raise
            log.warning(
                "ledger_not_answering_at_startup",
                attempt=attempt,
                error=str(error),
                retry_in_seconds=retry_delay_seconds,
            )
            await asyncio.sleep(retry_delay_seconds)
            attempt += 1
        else:
            return
