"""A Kovra deployment a test owns: its own database, ledger server, gateway and worker, each
a real process the test can kill and restart (the shared `deployment` fixture cannot be
disturbed that way, since every other e2e test uses it)."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
from pathlib import Path

import asyncpg

from gateway.infra.database.migrate import migrate
from tests.gateway.e2e.conftest import (
    base_environment,
    free_port,
    kill_group,
    kovra,
    repository,
    stop,
    wait_for,
    wait_for_port,
)
from tests.postgres import database_url, postgres_admin_url


class Stack:
    """One Kovra deployment whose processes the test kills and restarts."""

    def __init__(
        self, tmp: Path, *, redis_url: str, environment: dict[str, str] | None = None
    ) -> None:
        self.database = f"kovra_stack_{secrets.token_hex(4)}"
        self.database_url = database_url(self.database)
        self.environment = base_environment(tmp, self.database_url, redis_url)
        # The test kills and restarts the ledger too, so the stack runs its own ledger
        # server even when a real cluster is configured for the rest of the suite.
        self.environment.pop("TB_ADDRESSES", None)
        self.environment.update(environment or {})
        self.ledger_port = free_port()
        self.port = free_port()
        self.environment["KOVRA_LEDGER_ADDRESS"] = f"127.0.0.1:{self.ledger_port}"
        self.journal = tmp / "ledger.journal"
        self.log_path = tmp / "stack.log"
        self.log = self.log_path.open("wb")
        self.base = f"http://127.0.0.1:{self.port}"
        self.ledger: subprocess.Popen[bytes] | None = None
        self.gateway: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None

    def create_database(self) -> None:
        asyncio.run(_admin_sql(f'CREATE DATABASE "{self.database}"'))
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
        self.log.close()
        asyncio.run(_admin_sql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'))


async def _admin_sql(sql: str) -> None:
    connection = await asyncpg.connect(postgres_admin_url)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()
