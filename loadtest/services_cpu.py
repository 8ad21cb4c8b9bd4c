"""Where a request's CPU goes beyond the gateway: the ledger server, Redis and Postgres.

On one machine the benchmark's services share the cores with the gateway, so a transfer
costs their CPU as well as the gateway's, and the figure that decides how far the machine
can go is the sum. This finds each local service's process (Redis by `INFO`'s process id,
Postgres by the parent of a backend we connect to, whose tree holds every backend) and reads
their CPU from /proc (`loadtest.cpu`). A service on another machine is left out: its process
id would name nothing here, or something else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

import asyncpg
import redis

from loadtest import cpu

connect_timeout_seconds = 5.0


def redis_server_pid(url: str) -> int | None:
    """The Redis server's pid, when it is a `redis-server` process on this machine."""
    client = redis.Redis.from_url(url, socket_connect_timeout=connect_timeout_seconds)
    try:
        pid = int(client.info("server")["process_id"])
    finally:
        client.close()
    return pid if _command(pid).startswith("redis-server") else None


def postgres_server_pid(url: str) -> int | None:
    """The postmaster's pid, when the backend serving `url` is a local `postgres` process."""
    return asyncio.run(_postmaster_pid(url))


async def _postmaster_pid(url: str) -> int | None:
    connection = await asyncpg.connect(url, timeout=connect_timeout_seconds)
    try:
        # Read while connected: the backend exits with its connection.
        backend = int(await connection.fetchval("SELECT pg_backend_pid()"))
        if not _command(backend).startswith("postgres"):
            return None
        parent = cpu.parent_pid(backend)
    finally:
        await connection.close()
    return parent if parent is not None and _command(parent).startswith("postgres") else None


def cpu_seconds(pids: Mapping[str, int]) -> dict[str, float]:
    """Each named process tree's CPU seconds so far; a process that is gone reads 0."""
    spent = {}
    for name, pid in pids.items():
        try:
            spent[name] = cpu.tree_cpu_seconds(pid)
        except ProcessLookupError:
            spent[name] = 0.0
    return spent


def per_request_ms(
    before: Mapping[str, float], after: Mapping[str, float], requests: int
) -> dict[str, float]:
    """Each service's CPU per request, in ms, between two `cpu_seconds` readings."""
    return {
        name: cpu.per_request_ms(spent - before.get(name, 0.0), requests)
        for name, spent in after.items()
    }


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""
