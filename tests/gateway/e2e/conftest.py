"""A real Kovra deployment for end-to-end tests, started once per test session.

- Postgres: a fresh database on the local server (`KOVRA_TEST_POSTGRES_URL`, default
  postgresql://postgres@127.0.0.1:5432/postgres), migrated by `kovra migrate`, dropped after.
- Redis: database 14 of the tests' server (`tests/redis_server.py`), flushed first.
- Ledger: a real cluster when `TB_ADDRESSES` is set, else `kovra ledger-server` (the embedded
  engine shared over a socket) so that several gateway workers can share it.
- Gateway: `kovra serve --workers 2` and `kovra worker` as separate processes, like
  production (the sandbox rails answer quickly here: `KOVRA_SANDBOX_LATENCY_MS_MAX=5`).

Nothing is mocked: tests speak HTTP to the server and the server speaks to real services.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests import redis_server

repository = Path(__file__).resolve().parents[3]
kovra = [sys.executable, "-m", "gateway.cli"]
startup_timeout_seconds = 60
admin_token = "e2e-admin-" + "x" * 40


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(url: str, *, timeout_seconds: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become healthy in {timeout_seconds} s")


def wait_for_port(port: int, *, timeout_seconds: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"port {port}: the process exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {timeout_seconds} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a server started with `start_new_session=True`, and every process it started:
    SIGTERM to its process group, then SIGKILL to whatever of the group is left (granian's
    workers outlive a main process that did not shut them down)."""
    if process.poll() is None:
        _signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait(timeout=15)
    _signal_group(process, signal.SIGKILL)


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a server and every process of its group at once, as a crashing host would."""
    _signal_group(process, signal.SIGKILL)
    process.wait(timeout=30)


def _signal_group(process: subprocess.Popen[bytes], signal_number: signal.Signals) -> None:
    """The process's group if it leads one (`start_new_session=True`), else the process."""
    with contextlib.suppress(ProcessLookupError):
        if os.getpgid(process.pid) == process.pid:
            os.killpg(process.pid, signal_number)
        elif process.poll() is None:
            process.send_signal(signal_number)


async def run_sql(url: str, statement: str) -> None:
    """One statement on its own connection (databases, test triggers)."""
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def _create_database(admin_url: str, name: str) -> None:
    await run_sql(admin_url, f'CREATE DATABASE "{name}"')


async def _drop_database(admin_url: str, name: str) -> None:
    await run_sql(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Deployment:
    base_url: str
    environment: dict[str, str]
    database_url: str
    log_path: Path

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {admin_token}"}

    def created(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
        """POST `body` to `path`; the response, which must be a 201."""
        response = httpx.post(f"{self.base_url}{path}", json=body, headers=headers, timeout=30)
        assert response.status_code == 201, response.text
        return response

    def tenant(self, *, name: str = "e2e", tier: str = "enterprise") -> tuple[int, str]:
        """A new tenant through the admin API: its id and admin API key."""
        body = self.created("/admin/v1/tenants", {"name": name, "tier": tier}, self.admin()).json()
        return int(body["tenant_id"]), str(body["api_key"])

    def deposit(self, api_key: str, currency: str, amount: int) -> None:
        self.created("/v1/deposits", {"currency": currency, "amount": amount}, bearer(api_key))

    def fund_liquidity(self, amounts: dict[str, int]) -> None:
        """The platform's FX position in each currency, through the admin API."""
        for currency, amount in amounts.items():
            self.created(
                "/admin/v1/liquidity", {"currency": currency, "amount": amount}, self.admin()
            )


def bearer(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


def base_environment(tmp: Path, database_url: str, redis_url: str) -> dict[str, str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("KOVRA_", "PROMETHEUS_"))
    }
    environment.update(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "KOVRA_ENV": "sandbox",
            "KOVRA_ADMIN_TOKEN": admin_token,
            "KOVRA_DATA_DIR": str(tmp / "data"),
            "KOVRA_JWT_SECRET": "e2e-jwt-secret-" + "y" * 40,
            "PYTHONUNBUFFERED": "1",
            "KOVRA_PENDING_RAIL_BASE_MS": "50",
            "KOVRA_SANCTIONS_FILES": str(Path(__file__).parent / "fixtures" / "sanctions.csv"),
            "KOVRA_SANCTIONS_REFRESH_SECONDS": "1",
            "KOVRA_SANDBOX_LATENCY_MS_MAX": "5",
            "PYTHONPATH": str(repository),
            "KOVRA_LOG_LEVEL": "warning",
        }
    )
    return environment


@pytest.fixture(scope="session")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with running_deployment(tmp_path_factory.mktemp("deployment"), redis_db=14) as running:
        yield running


@contextlib.contextmanager
def running_deployment(
    tmp: Path, *, redis_db: int, environment: dict[str, str] | None = None
) -> Iterator[Deployment]:
    """The production shape on a database of its own and Redis database `redis_db`: the
    ledger server (unless `TB_ADDRESSES`), a worker and a two-worker gateway, stopped and
    dropped on leaving. Tests whose actions would disturb others (the admin plane's fuzzing
    changes rates and freezes tenants) run on one of their own, with `environment` on top of
    the base one."""
    import asyncio  # noqa: PLC0415

    postgres_admin = os.environ.get(
        "KOVRA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    database = f"kovra_e2e_{secrets.token_hex(4)}"
    database_url = postgres_admin.rsplit("/", 1)[0] + f"/{database}"
    redis_url = redis_server.redis_url(redis_db)
    asyncio.run(_create_database(postgres_admin, database))
    import redis  # noqa: PLC0415

    redis.Redis.from_url(redis_url).flushdb()
    given = environment or {}
    environment = base_environment(tmp, database_url, redis_url)
    port = free_port()
    # The sandbox mandate providers' notifications go to this deployment's gateway.
    environment["KOVRA_SANDBOX_PROVIDER_NOTIFY_URL"] = f"http://127.0.0.1:{port}"
    environment.update(given)
    processes: list[subprocess.Popen[bytes]] = []
    log_path = tmp / "server.log"
    log = log_path.open("wb")
    try:
        subprocess.run(
            [*kovra, "migrate"], env=environment, check=True, cwd=repository, timeout=120
        )
        if not environment.get("TB_ADDRESSES"):
            ledger_port = free_port()
            ledger = subprocess.Popen(
                [
                    *kovra,
                    "ledger-server",
                    "--address",
                    f"127.0.0.1:{ledger_port}",
                    "--journal",
                    str(tmp / "ledger.journal"),
                ],
                env=environment,
                cwd=repository,
                start_new_session=True,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            processes.append(ledger)
            wait_for_port(ledger_port, timeout_seconds=startup_timeout_seconds, process=ledger)
            environment["KOVRA_LEDGER_ADDRESS"] = f"127.0.0.1:{ledger_port}"
        worker = subprocess.Popen(
            [*kovra, "worker"],
            env=environment,
            cwd=repository,
            start_new_session=True,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        processes.append(worker)
        server = subprocess.Popen(
            [*kovra, "serve", "--workers", "2", "--port", str(port)],
            env=environment,
            cwd=repository,
            start_new_session=True,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        processes.append(server)
        base_url = f"http://127.0.0.1:{port}"
        wait_for(f"{base_url}/health", timeout_seconds=startup_timeout_seconds, process=server)
        yield Deployment(
            base_url=base_url, environment=environment, database_url=database_url, log_path=log_path
        )
    finally:
        for process in reversed(processes):
            stop(process)
        log.close()
        asyncio.run(_drop_database(postgres_admin, database))
