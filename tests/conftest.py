"""Shared fixtures: ledger clients for the embedded engine, the shared embedded ledger server
(`ledger.remote`, in-process on an ephemeral port) and, with TB_ADDRESSES, a cluster.

Tests that take `ledger_client` run once per backend with identical expectations. The
real-cluster run is skipped, with the reason, when `TB_ADDRESSES` is not set. A real cluster
keeps its state between tests, so tests draw fresh ids (`fresh_id`, `fresh_tenant_id`).

Redis is the real local server: `redis_client` and a private key `namespace` per test, every
key under it deleted afterwards.

Hypothesis runs under the `kovra` profile, loaded here for the whole suite: no deadline and
no too-slow health check, since both time the machine, and the suite asserts behaviour, not
speed (on a busy machine a 200 ms deadline fails a property that reaches Redis or Postgres).
A failing example is printed with the blob that replays it. Properties that reach a service
also say `deadline=None` themselves, so they stay untimed under any other profile chosen with
`--hypothesis-profile`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator

import pytest
import tigerbeetle as tb
from hypothesis import HealthCheck, settings
from redis.asyncio import Redis

from ledger.clients import (
    EmbeddedClient,
    LedgerClient,
    RemoteLedgerClient,
    TigerBeetleClient,
    TigerBeetleSettings,
)
from ledger.remote.server import running_server
from tests import redis_server

pytest_plugins = ["tests.postgres"]

hypothesis_profile = "kovra"
settings.register_profile(
    hypothesis_profile,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile(hypothesis_profile)

# The modules that start whole deployments take minutes each; collected first, they are the
# first units `scripts/test`'s xdist workers take (`--dist loadfile` hands modules out in
# collection order), so the many short modules fill in around them instead of one long module
# finishing alone at the end.
long_module_folders = ("gateway/e2e/", "loadtest/")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests_root = os.path.dirname(__file__)

    def short(item: pytest.Item) -> bool:
        return not os.path.relpath(str(item.path), tests_root).startswith(long_module_folders)

    items.sort(key=short)  # Stable: each module's tests stay together and in order.


real_cluster_skip_reason = (
    "TB_ADDRESSES is not set: no real TigerBeetle cluster to run the conformance suite against"
)


def real_cluster_available() -> bool:
    return bool(os.environ.get("TB_ADDRESSES", "").strip())


@pytest.fixture(
    params=[
        "embedded",
        "remote",
        pytest.param(
            "tigerbeetle",
            marks=pytest.mark.skipif(not real_cluster_available(), reason=real_cluster_skip_reason),
        ),
    ]
)
async def ledger_client(request: pytest.FixtureRequest) -> AsyncIterator[LedgerClient]:
    async with contextlib.AsyncExitStack() as stack:
        client: LedgerClient
        if request.param == "embedded":
            client = EmbeddedClient()
        elif request.param == "remote":
            server = await stack.enter_async_context(
                running_server(journal_path=None, address="127.0.0.1:0")
            )
            client = RemoteLedgerClient(server.address)
        else:
            client = TigerBeetleClient(TigerBeetleSettings.from_environment())
        try:
            yield client
        finally:
            await client.close()


def fresh_id() -> int:
    """A new, time-sortable u128 that no earlier test run used (TigerBeetle's own ULIDs)."""
    return tb.id()


def fresh_tenant_id() -> int:
    """A random tenant id (63 bits, never 0): collisions across runs are negligible."""
    return secrets.randbits(63) + 1


redis_url = redis_server.redis_url(0)


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
