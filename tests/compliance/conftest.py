"""Real Redis for compliance tests: a client on the local server and a private key namespace
per test, every key under it deleted afterwards (the same pattern as tests/gateway)."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

redis_url = os.environ.get("KOVRA_TEST_REDIS_URL_SHARED", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def redis_client() -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def namespace(redis_client: Redis) -> AsyncIterator[str]:
    """A namespace no other test uses; every key under it is deleted afterwards."""
    name = f"kovra-test-{secrets.token_hex(8)}"
    yield name
    keys = [key async for key in redis_client.scan_iter(match=f"{name}:*")]
    if keys:
        await redis_client.delete(*keys)
