"""Real Postgres for tests: a fresh database per test (or per module) on the local server,
dropped after; every service opened on it, or the whole app in this process. A pytest plugin of
tests/conftest.py, which also holds the Redis fixtures."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from litestar import Litestar
from redis.asyncio import Redis

from gateway import app as gateway_app
from gateway.infra.database.migrate import migrate
from gateway.runtime import Runtime, open_runtime
from gateway.settings import load_settings
from loadtest.bench_gateway import admin_token
from tests import redis_server

# How long a module's app may run, its tests together (pytest's own limit is per test).
module_app_seconds_max = 1_200
postgres_admin_url = os.environ.get(
    "KOVRA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def database_url(name: str) -> str:
    return postgres_admin_url.rsplit("/", 1)[0] + f"/{name}"


@contextlib.asynccontextmanager
async def new_database() -> AsyncIterator[str]:
    """The URL of a new, empty database, dropped on leaving."""
    name = f"kovra_test_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(postgres_admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield database_url(name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def empty_database() -> AsyncIterator[str]:
    """The URL of a new, empty database, dropped after the test."""
    async with new_database() as url:
        yield url


@pytest.fixture
async def pool(empty_database: str) -> AsyncIterator[asyncpg.Pool]:
    await migrate(empty_database)
    created = await asyncpg.create_pool(empty_database, min_size=1, max_size=5)
    try:
        yield created
    finally:
        await created.close()


async def migrated_runtime(
    database_url: str, data_dir: Path, environment: dict[str, str]
) -> Runtime:
    """Migrate the database and open every service on it, as `kovra serve` does at start:
    Redis database 11, emptied first (what an earlier test left there, such as admissions
    whose payouts were in its own ledger, is not this test's), the sandbox key under
    `data_dir`, and `environment` on top. The caller closes them."""
    await migrate(database_url)
    redis_url = redis_server.redis_url(11)
    settings = load_settings(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "KOVRA_DATA_DIR": str(data_dir),
            **environment,
        }
    )
    client = Redis.from_url(redis_url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()
    return await open_runtime(settings)


@contextlib.asynccontextmanager
async def in_process_app(
    database_url: str,
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    redis_url: str,
    environment: dict[str, str] | None = None,
    timeout_seconds: float = 60,
) -> AsyncIterator[tuple[Litestar, httpx.AsyncClient]]:
    """The gateway's ASGI app in this process, started (its lifespan) on the migrated
    database and `redis_url`, a Redis database of the test's own, emptied before and after;
    with a client that calls it without HTTP. The admin token is the benchmarks'."""
    await migrate(database_url)
    await _flush(redis_url)
    settings = load_settings(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "KOVRA_DATA_DIR": str(data_dir),
            "KOVRA_ADMIN_TOKEN": admin_token,
            "KOVRA_LOG_LEVEL": "warning",
            **(environment or {}),
        }
    )
    # The app freezes what start-up left alive; in a test process that would be the suite.
    monkeypatch.setattr(gateway_app, "tune_garbage_collection", lambda: None)
    app = gateway_app.create_app(settings)
    try:
        async with app.lifespan(), asyncio.timeout(timeout_seconds):
            transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
            async with httpx.AsyncClient(transport=transport, base_url="http://kovra") as client:
                yield app, client
    finally:
        await _flush(redis_url)


async def _flush(redis_url: str) -> None:
    client = Redis.from_url(redis_url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def app_for_a_module(
    data_dir: Path, *, redis_url: str, environment: dict[str, str] | None = None
) -> AsyncIterator[tuple[Litestar, httpx.AsyncClient]]:
    """`in_process_app` on a database of its own, kept running across a module's tests (use
    it from a module-scoped fixture on the module's event loop). The app's lifespan must
    start and end in one task, while a fixture's setup and teardown run in two, so the app
    lives in a task of its own until the module is done."""
    started: asyncio.Future[tuple[Litestar, httpx.AsyncClient]] = (
        asyncio.get_running_loop().create_future()
    )
    done = asyncio.Event()

    async def serve() -> None:
        async with new_database() as url:
            with pytest.MonkeyPatch.context() as monkeypatch:
                running = in_process_app(
                    url,
                    data_dir,
                    monkeypatch,
                    redis_url=redis_url,
                    environment=environment,
                    timeout_seconds=module_app_seconds_max,
                )
                async with running as app_and_client:
                    started.set_result(app_and_client)
                    await done.wait()

    server = asyncio.create_task(serve())
    either: list[asyncio.Future[Any]] = [server, started]
    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    if not started.done():
        server.result()  # Start-up failed: its error, here.
    try:
        yield started.result()
    finally:
        done.set()
        await server
