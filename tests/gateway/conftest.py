"""Real Postgres for gateway tests: a fresh database per test on the local server, dropped
after. (Redis fixtures, shared with other packages, are in tests/conftest.py.)"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis

from gateway.db.migrate import migrate
from gateway.services import Services, open_services
from gateway.settings import load_settings

postgres_admin_url = os.environ.get(
    "KOVRA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def database_url(name: str) -> str:
    return postgres_admin_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture
async def empty_database() -> AsyncIterator[str]:
    """The URL of a new, empty database, dropped after the test."""
    name = f"kovra_test_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(postgres_admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield database_url(name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def pool(empty_database: str) -> AsyncIterator[asyncpg.Pool]:
    await migrate(empty_database)
    created = await asyncpg.create_pool(empty_database, min_size=1, max_size=5)
    try:
        yield created
    finally:
        await created.close()


async def migrated_services(
    database_url: str, data_dir: Path, environment: dict[str, str]
) -> Services:
    """Migrate the database and open every service on it, as `kovra serve` does at start:
    Redis database 11, emptied first (what an earlier test left there, such as admissions
    whose payouts were in its own ledger, is not this test's), the sandbox key under
    `data_dir`, and `environment` on top. The caller closes them."""
    await migrate(database_url)
    redis_url = "redis://127.0.0.1:6379/11"
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
    return await open_services(settings)
