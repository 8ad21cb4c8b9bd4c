"""The benchmarks' environment: a fresh, migrated Postgres database that is dropped
afterwards, and the benchmarks' own Redis database, empty when a run starts and emptied
again when it ends, so no run works beside what an earlier one left. The shared ledger
server is handed over only once it accepts connections, and one that exits at start is an
error rather than a wait."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import asyncpg
import pytest
import redis

from loadtest import bench_gateway
from loadtest.bench_gateway import bench_environment, bench_redis_url_default


async def _database_exists(url: str) -> bool:
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    name = url.rsplit("/", 1)[1]
    connection = await asyncpg.connect(admin_url)
    try:
        return bool(await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await connection.close()


async def _migrations(url: str) -> int:
    connection = await asyncpg.connect(url)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM schema_migrations"))
    finally:
        await connection.close()


def test_a_run_starts_and_ends_on_empty_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KOVRA_BENCH_REDIS_URL", raising=False)
    client = redis.Redis.from_url(bench_redis_url_default)
    try:
        client.set("left-by-an-earlier-run", "1")
        with bench_environment(tmp_path) as environment:
            assert environment["REDIS_URL"] == bench_redis_url_default
            assert client.dbsize() == 0
            database_url = environment["DATABASE_URL"]
            assert asyncio.run(_migrations(database_url)) > 0
            client.set("left-by-this-run", "1")
        assert client.dbsize() == 0
        assert not asyncio.run(_database_exists(database_url))
    finally:
        client.close()


def test_the_shared_ledger_is_listening_when_it_is_handed_over(tmp_path: Path) -> None:
    environment = {**os.environ, "PYTHONPATH": str(bench_gateway.repository)}
    environment.pop("TB_ADDRESSES", None)
    with bench_gateway.shared_ledger(environment, tmp_path) as pid:
        assert pid is not None
        host, _, port = environment["KOVRA_LEDGER_ADDRESS"].rpartition(":")
        # No retry: the server accepts at once, or the handover came too early.
        socket.create_connection((host, int(port)), timeout=1).close()


def test_a_shared_ledger_that_exits_at_start_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        bench_gateway,
        "ledger_server_command",
        lambda port, directory: [sys.executable, "-c", "raise SystemExit(3)"],
    )
    environment = {k: v for k, v in os.environ.items() if k != "TB_ADDRESSES"}
    with (
        pytest.raises(RuntimeError, match="exited with 3"),
        bench_gateway.shared_ledger(environment, tmp_path),
    ):
        pass
