"""Where a request's CPU goes beyond the gateway: the ledger, Redis and Postgres.

On one machine the benchmark's services share the cores with the gateway, so a transfer
costs their CPU as well as the gateway's, and the figure that decides how far the machine
can go is the sum. This finds each local service's process (Redis by `INFO`'s process id,
Postgres by the parent of a backend we connect to, whose tree holds every backend) and reads
their CPU from /proc (`loadtest.cpu`). A service on another machine is left out: its process
id would name nothing here, or something else. The ledger is the `kovra ledger-server` the
benchmark starts, or, with `TB_ADDRESSES`, every local TigerBeetle replica serving one of
those addresses (found by its command line, since a replica answers no query about itself).
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


async def database_backend_pids(connection: asyncpg.Connection) -> list[int]:
    """The local backends serving the connection's database, this connection's own left out:
    its share of the postmaster's tree, which on a shared server also holds the backends of
    other databases (and the processes every database shares: WAL writer, checkpointer)."""
    rows = await connection.fetch(
        "SELECT pid FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    return [int(row["pid"]) for row in rows if _command(int(row["pid"])).startswith("postgres")]


def tigerbeetle_replica_pids(addresses: str, *, proc: Path = Path("/proc")) -> list[int]:
    """The local `tigerbeetle start` processes whose `--addresses` share a port with
    `addresses` (TB_ADDRESSES: ports, or hosts with ports, comma-separated)."""
    wanted = _ports(addresses)
    found = []
    for entry in sorted(proc.iterdir(), key=lambda path: path.name):
        if not entry.name.isdigit() or _command(int(entry.name), proc=proc) != "tigerbeetle":
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError):
            continue
        if arguments[1:2] != [b"start"]:  # `repl` and `benchmark` take --addresses too.
            continue
        for argument in arguments[2:]:
            text = argument.decode(errors="replace")
            if text.startswith("--addresses=") and wanted & _ports(text.split("=", 1)[1]):
                found.append(int(entry.name))
                break
    return found


def _ports(addresses: str) -> set[str]:
    """The ports of a TigerBeetle address list: `3001`, `127.0.0.1:3001`, `[::1]:3001`."""
    return {part.strip().rsplit(":", 1)[-1] for part in addresses.split(",") if part.strip()}


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


def _command(pid: int, *, proc: Path = Path("/proc")) -> str:
    try:
        return (proc / str(pid) / "comm").read_text().strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""
