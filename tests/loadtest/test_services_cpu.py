"""The benchmark finds the local services' processes and reads their CPU: Redis is the
`redis-server` that INFO names, Postgres is the postmaster whose tree holds our backend, and
work done by a backend shows in that tree's CPU, and a database's backends are the ones
serving it other than the caller's; a process that is gone reads nothing; and
TigerBeetle replicas are the local `tigerbeetle start` processes serving one of TB_ADDRESSES."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import asyncpg
import pytest
import redis

from loadtest import services_cpu
from loadtest.cpu import parent_pid
from tests.conftest import redis_url
from tests.postgres import postgres_admin_url


def test_redis_is_the_redis_server_info_names() -> None:
    pid = services_cpu.redis_server_pid(redis_url)
    client = redis.Redis.from_url(redis_url)
    try:
        assert pid == int(client.info("server")["process_id"])
    finally:
        client.close()
    assert Path(f"/proc/{pid}/comm").read_text().strip() == "redis-server"


def test_postgres_work_shows_in_the_postmasters_tree() -> None:
    postmaster = services_cpu.postgres_server_pid(postgres_admin_url)
    assert postmaster is not None

    async def busy_backend() -> None:
        connection = await asyncpg.connect(postgres_admin_url)
        try:
            backend = int(await connection.fetchval("SELECT pg_backend_pid()"))
            assert parent_pid(backend) == postmaster
            before = services_cpu.cpu_seconds({"postgres": postmaster})
            await connection.fetchval("SELECT count(*) FROM generate_series(1, 5000000)")
            after = services_cpu.cpu_seconds({"postgres": postmaster})
            assert after["postgres"] - before["postgres"] > 0.05
        finally:
            await connection.close()

    asyncio.run(busy_backend())


async def test_a_databases_backends_are_the_others_serving_it(empty_database: str) -> None:
    reader = await asyncpg.connect(empty_database)
    other = await asyncpg.connect(empty_database)
    elsewhere = await asyncpg.connect(postgres_admin_url)
    try:
        other_pid = int(await other.fetchval("SELECT pg_backend_pid()"))
        reader_pid = int(await reader.fetchval("SELECT pg_backend_pid()"))
        elsewhere_pid = int(await elsewhere.fetchval("SELECT pg_backend_pid()"))

        backends = await services_cpu.database_backend_pids(reader)
    finally:
        for connection in (reader, other, elsewhere):
            await connection.close()

    assert other_pid in backends
    assert reader_pid not in backends
    assert elsewhere_pid not in backends


def test_a_process_that_is_gone_reads_nothing() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert services_cpu.cpu_seconds({"gone": gone.pid}) == {"gone": 0.0}


def test_per_request_cost_of_each_service() -> None:
    before = {"redis": 1.0, "postgres": 2.0}
    after = {"redis": 1.5, "postgres": 2.25}
    assert services_cpu.per_request_ms(before, after, 1_000) == {
        "redis": pytest.approx(0.5),
        "postgres": pytest.approx(0.25),
    }
    assert services_cpu.per_request_ms(before, after, 0) == {"redis": 0.0, "postgres": 0.0}


def fake_process(proc: Path, pid: int, command: str, *arguments: str) -> None:
    """A /proc entry as the kernel shows it: `comm`, and `cmdline` split by NUL bytes."""
    entry = proc / str(pid)
    entry.mkdir()
    (entry / "comm").write_text(command + "\n")
    (entry / "cmdline").write_bytes(b"\0".join(a.encode() for a in (command, *arguments)) + b"\0")


def test_tigerbeetle_replicas_are_found_by_their_addresses(tmp_path: Path) -> None:
    fake_process(tmp_path, 40, "tigerbeetle", "start", "--addresses=3001", "0_0.tigerbeetle")
    fake_process(tmp_path, 41, "tigerbeetle", "start", "--addresses=127.0.0.1:3002,3003", "x")
    fake_process(tmp_path, 42, "tigerbeetle", "start", "--addresses=4000", "another cluster")
    fake_process(tmp_path, 43, "tigerbeetle", "format", "--cluster=0", "0_0.tigerbeetle")
    fake_process(tmp_path, 44, "python", "--addresses=3001")
    fake_process(tmp_path, 45, "tigerbeetle", "repl", "--addresses=3001", "--cluster=0")
    (tmp_path / "self").mkdir()
    (tmp_path / "net").mkdir()

    assert services_cpu.tigerbeetle_replica_pids("3001", proc=tmp_path) == [40]
    assert services_cpu.tigerbeetle_replica_pids("127.0.0.1:3001,3003", proc=tmp_path) == [40, 41]
    assert services_cpu.tigerbeetle_replica_pids("[::1]:3002", proc=tmp_path) == [41]
    assert services_cpu.tigerbeetle_replica_pids("", proc=tmp_path) == []
    assert services_cpu.tigerbeetle_replica_pids("5000", proc=tmp_path) == []


@pytest.mark.skipif(
    not os.environ.get("TB_ADDRESSES"), reason="TB_ADDRESSES is not set: no replica to find"
)
def test_a_local_replica_is_a_tigerbeetle_process() -> None:
    for pid in services_cpu.tigerbeetle_replica_pids(os.environ["TB_ADDRESSES"]):
        assert Path(f"/proc/{pid}/comm").read_text().strip() == "tigerbeetle"
