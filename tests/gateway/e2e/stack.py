"""A Kovra deployment a test owns: its own database, ledger server, gateway and worker, each
a real process the test can kill and restart (the shared `deployment` fixture cannot be
disturbed that way, since every other e2e test uses it).

By default the database lives on the tests' shared Postgres and Redis is the URL the test
gives. With `own_services=True` the stack also runs its own Postgres and Redis servers
(`tests.gateway.e2e.own_servers`), which the test can kill and restart like the rest."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
from pathlib import Path

import asyncpg

from gateway.infra.database.migrate import migrate
from tests.gateway.e2e.conftest import (
    base_environment,
    kill_group,
    kovra,
    repository,
    stop,
    wait_for,
    wait_for_port,
)
from tests.gateway.e2e.own_servers import OwnPostgres, OwnRedis, server_port
from tests.postgres import postgres_admin_url


class Stack:
    """One Kovra deployment whose processes the test kills and restarts."""

    def __init__(
        self,
        tmp: Path,
        *,
        redis_url: str | None = None,
        environment: dict[str, str] | None = None,
        own_services: bool = False,
    ) -> None:
        self.log_path = tmp / "stack.log"
        self.log = self.log_path.open("wb")
        self.postgres: OwnPostgres | None = None
        self.redis: OwnRedis | None = None
        self.admin_url = postgres_admin_url
        if own_services:
            assert redis_url is None, "a stack with its own services runs its own Redis"
            self.postgres = OwnPostgres(log=self.log)
            self.redis = OwnRedis(tmp / "redis", log=self.log)
            self.admin_url = self.postgres.admin_url
            redis_url = self.redis.url(0)
        assert redis_url is not None, "a stack without its own services is given a Redis"
        self.database = f"kovra_stack_{secrets.token_hex(4)}"
        self.database_url = self.admin_url.rsplit("/", 1)[0] + f"/{self.database}"
        self.redis_url = redis_url
        self.environment = base_environment(tmp, self.database_url, redis_url)
        # The test kills and restarts the ledger too, so the stack runs its own ledger
        # server even when a real cluster is configured for the rest of the suite.
        self.environment.pop("TB_ADDRESSES", None)
        self.environment.update(environment or {})
        self.ledger_port = server_port()
        self.port = server_port()
        self.environment["KOVRA_LEDGER_ADDRESS"] = f"127.0.0.1:{self.ledger_port}"
        self.journal = tmp / "ledger.journal"
        self.base = f"http://127.0.0.1:{self.port}"
        # The sandbox mandate providers' notifications go to this stack's gateway.
        self.environment.setdefault("KOVRA_SANDBOX_PROVIDER_NOTIFY_URL", self.base)
        self.ledger: subprocess.Popen[bytes] | None = None
        self.gateway: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None

    def start_services(self) -> None:
        """Start the stack's own Postgres and Redis (nothing without `own_services`)."""
        self.start_postgres()
        self.start_redis()

    def start_postgres(self) -> None:
        """Start (or restart, on the same data and port) the stack's own Postgres."""
        if self.postgres is not None:
            self.postgres.start()

    def kill_postgres(self) -> None:
        """SIGKILL the stack's own Postgres, every backend with it."""
        assert self.postgres is not None, "only a stack with its own services kills Postgres"
        self.postgres.kill()

    def start_redis(self) -> None:
        """Start (or restart, on the same append-only file and port) the stack's own Redis."""
        if self.redis is not None:
            self.redis.start()

    def kill_redis(self) -> None:
        """SIGKILL the stack's own Redis."""
        assert self.redis is not None, "only a stack with its own services kills Redis"
        self.redis.kill()

    def create_database(self) -> None:
        asyncio.run(_admin_sql(self.admin_url, f'CREATE DATABASE "{self.database}"'))
        asyncio.run(migrate(self.database_url))

    def _spawn(self, *arguments: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [*kovra, *arguments],
            start_new_session=True,
            env=self.environment,
            cwd=repository,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def start_ledger(self) -> None:
        self.ledger = self._spawn(
            "ledger-server",
            "--address",
            f"127.0.0.1:{self.ledger_port}",
            "--journal",
            str(self.journal),
        )
        wait_for_port(self.ledger_port, timeout_seconds=60, process=self.ledger)

    def start_gateway(self) -> None:
        self.gateway = self._spawn("serve", "--port", str(self.port))
        wait_for(f"{self.base}/health", timeout_seconds=60, process=self.gateway)

    def start_worker(self) -> None:
        self.worker = self._spawn("worker")

    def start(self) -> None:
        self.start_services()
        self.create_database()
        self.start_ledger()
        self.start_gateway()
        self.start_worker()

    def kill(self, process: subprocess.Popen[bytes] | None) -> None:
        # The whole process group: SIGKILL of granian's main alone would leave its worker
        # serving on the port, and the "crash" would not be one.
        if process is not None and process.poll() is None:
            kill_group(process)

    def close(self) -> None:
        for process in (self.worker, self.gateway, self.ledger):
            if process is not None:
                stop(process)
        try:
            if self.postgres is None:
                drop = f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'
                asyncio.run(_admin_sql(self.admin_url, drop))
        finally:
            # The own servers go with their data (the Postgres directory is outside tmp).
            for server in (self.postgres, self.redis):
                if server is not None:
                    server.close()
            self.log.close()


async def _admin_sql(admin_url: str, sql: str) -> None:
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()
