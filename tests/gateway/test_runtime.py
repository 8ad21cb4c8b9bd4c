"""The connections `open_runtime` opens. The Postgres pool: releasing a connection costs no
round trip (asyncpg's default reset query is not sent), yet a transaction left open is still
rolled back; and no code of ours leaves session state on a pooled connection, which is what
makes skipping that reset safe. The ledger: start-up waits, bounded, for a ledger that does
not answer yet (a real `kovra ledger-server` that starts listening a while later), opens the
platform's accounts once it answers, and (on a virtual clock) retries every retry delay while
another attempt fits in its wait, then gives up with `LedgerUnavailable`."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.runtime import Runtime, open_platform_accounts_when_answering
from ledger.accounts import platform_account_id
from ledger.clients import RemoteLedgerClient
from ledger.currencies import CurrencyRegistry
from ledger.errors import LedgerUnavailable
from ledger.remote.server import running_server
from ledger.service import Ledger, platform_account_types
from tests import virtual_time
from tests.gateway.e2e.conftest import free_port
from tests.postgres import migrated_runtime

packages = ("gateway", "ledger", "fx", "rails", "compliance")
root = Path(__file__).resolve().parents[2]

# SQL that outlives its transaction on a session: session advisory locks, notifications,
# session settings (a statement starting with SET that is not SET LOCAL) and session-wide
# `set_config(..., false)`. The SQL in these packages is written in upper case, so prose such as
# "set KOVRA_ADMIN_TOKEN" is not taken for a statement.
session_state_patterns = {
    "a session advisory lock": re.compile(r"pg_(try_)?advisory_lock(_shared)?\s*\("),
    "LISTEN": re.compile(r"[\"']\s*LISTEN\b|\.add_listener\("),
    "a session setting": re.compile(r"[\"']\s*SET\s+(?!LOCAL\b)"),
    "a session-wide set_config": re.compile(r"set_config\([^)]*,\s*false\s*\)", re.IGNORECASE),
}
# The migration runner holds its lock on a connection of its own, never a pooled one, and
# unlocks it before closing that connection.
own_connection_files = {Path("gateway/infra/database/migrate.py")}


@pytest.fixture
async def services(empty_database: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    opened = await migrated_runtime(
        empty_database, tmp_path, {"KOVRA_CURRENCIES": "EUR", "KOVRA_DATABASE_POOL_SIZE": "1"}
    )
    try:
        yield opened
    finally:
        await opened.close()


async def test_a_released_connection_is_not_reset_by_a_round_trip(services: Runtime) -> None:
    """With one connection in the pool, a session setting made before release is still there
    after: release sent no `RESET ALL` (nor the rest of asyncpg's reset query)."""
    async with services.pool.acquire() as connection:
        await connection.execute("SET application_name = 'kept-by-the-pool'")
        first_backend = await connection.fetchval("SELECT pg_backend_pid()")
    async with services.pool.acquire() as connection:
        assert await connection.fetchval("SELECT pg_backend_pid()") == first_backend
        assert await connection.fetchval("SHOW application_name") == "kept-by-the-pool"


async def test_a_transaction_left_open_is_still_rolled_back_on_release(
    services: Runtime,
) -> None:
    async with services.pool.acquire() as connection:
        await connection.execute("CREATE TABLE IF NOT EXISTS release_probe (value int)")
    async with services.pool.acquire() as connection:
        await connection.execute("BEGIN")
        await connection.execute("INSERT INTO release_probe VALUES (1)")
    async with services.pool.acquire() as connection:
        assert not connection.is_in_transaction()
        assert await connection.fetchval("SELECT count(*) FROM release_probe") == 0


def test_no_code_leaves_session_state_on_a_pooled_connection() -> None:
    found: list[str] = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root)
            if relative in own_connection_files:
                continue
            text = path.read_text(encoding="utf-8")
            for what, pattern in session_state_patterns.items():
                found.extend(f"{relative}: {what}" for _ in pattern.finditer(text))
    assert found == []


@pytest.mark.parametrize(
    ("sql", "what"),
    [
        ('"SELECT pg_advisory_lock($1)"', "a session advisory lock"),
        ("'LISTEN transfers'", "LISTEN"),
        ('"SET statement_timeout = 100"', "a session setting"),
        ("\"SELECT set_config('x.y', '1', false)\"", "a session-wide set_config"),
    ],
)
def test_the_scan_finds_each_kind_of_session_state(sql: str, what: str) -> None:
    assert session_state_patterns[what].search(sql)


@pytest.mark.parametrize(
    "sql",
    [
        '"SELECT pg_advisory_xact_lock($1)"',
        '"SET LOCAL statement_timeout = 100"',
        '"""UPDATE webhook_deliveries SET status = $1"""',
    ],
)
def test_the_scan_passes_what_ends_with_the_transaction(sql: str) -> None:
    assert not any(pattern.search(sql) for pattern in session_state_patterns.values())


def unused_loopback_address() -> str:
    """A loopback TCP address nothing listens on (the port is free when this returns)."""
    return f"127.0.0.1:{free_port()}"


def remote_ledger(address: str) -> Ledger:
    return Ledger(RemoteLedgerClient(address, timeout_ms=1_000), CurrencyRegistry(["EUR", "IDR"]))


async def test_start_up_waits_for_a_ledger_that_answers_later() -> None:
    address = unused_loopback_address()
    ledger = remote_ledger(address)
    started = asyncio.Event()

    async def serve_later() -> None:
        await asyncio.sleep(1.5)
        async with running_server(journal_path=None, address=address):
            started.set()
            # Serves until the test ends: the accounts are looked up in this same engine.
            await asyncio.sleep(30)

    server_task = asyncio.create_task(serve_later())
    try:
        await open_platform_accounts_when_answering(
            ledger, wait_seconds_max=20, retry_delay_seconds=0.2
        )
        assert started.is_set()
        expected = [
            platform_account_id(account_type, currency.number)
            for currency in ledger.currencies.enabled()
            for account_type in platform_account_types
        ]
        found = await ledger.client.lookup_accounts(expected)
        assert [account.id for account in found] == expected
    finally:
        server_task.cancel()
        await ledger.client.close()


class _AttemptsRecorded(Ledger):
    """A ledger that notes the moment of each attempt to open the platform's accounts."""

    def __init__(self, client: RemoteLedgerClient) -> None:
        super().__init__(client, CurrencyRegistry(["EUR", "IDR"]))
        self.attempted_at: list[float] = []

    async def open_platform_accounts(self) -> None:
        self.attempted_at.append(virtual_time.now())
        await super().open_platform_accounts()


def test_start_up_retries_for_its_wait_then_gives_up() -> None:
    """On a virtual clock, against a client that is unavailable at once: an attempt every
    retry delay while another fits in the wait, then `LedgerUnavailable`, never a hang."""

    async def start_up() -> list[float]:
        client = RemoteLedgerClient(unused_loopback_address())
        await client.close()  # Every call is now `LedgerUnavailable`, without a socket.
        ledger = _AttemptsRecorded(client)
        with pytest.raises(LedgerUnavailable):
            await open_platform_accounts_when_answering(
                ledger, wait_seconds_max=1.0, retry_delay_seconds=0.25
            )
        return ledger.attempted_at

    assert virtual_time.run(start_up()) == [0.0, 0.25, 0.5, 0.75]
