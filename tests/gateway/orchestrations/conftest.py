"""The `flow` fixture: a tenant, a customer and an active mandate over every real service a
run touches (`tests.gateway.orchestrations.fixtures`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from redis.asyncio import Redis

from tests.gateway.orchestrations.fixtures import Flow, make_flow


@pytest.fixture
async def flow(pool: asyncpg.Pool, redis_client: Redis, namespace: str) -> AsyncIterator[Flow]:
    async for made in make_flow(pool, redis_client, namespace):
        yield made
