"""The connections `open_runtime` opens. The Postgres pool: releasing a connection costs no
round trip (asyncpg's default reset query is not sent), yet a transaction left open is still
rolled back; and no code of ours leaves session state on a pooled connection, which is what
makes skipping that reset safe. Start-up waits, bounded, for a dependency that does not
answer yet: a ledger (a real `kovra ledger-server` that starts listening a while later), a
Postgres and a Redis that drop its connections for a while (real servers behind a port that
opens later); it opens once they answer, gives up with `LedgerUnavailable` past its wait (on
a virtual clock: an attempt every retry delay while another fits in the wait), and does not
wait at all for a misconfiguration (a database that does not exist)."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from gateway.infra.database.migrate import migrate
from gateway.runtime import Runtime, open_runtime, when_answering
from gateway.settings import load_settings
from ledger.accounts import platform_account_id
from ledger.clients import RemoteLedgerClient
from ledger.currencies import CurrencyRegistry
from ledger.errors import LedgerUnavailable
from ledger.remote.server import running_server
from ledger.service import Ledger, platform_account_types
from tests import redis_server, virtual_time
from tests.gateway.e2e.conftest import free_port
from tests.postgres import database_url, migrated_runtime
from tests.tcp_relay import Relay

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
        await when_answering(
            ledger.open_platform_accounts, wait_seconds_max=20, retry_delay_seconds=0.2
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
            await when_answering(
                ledger.open_platform_accounts, wait_seconds_max=1.0, retry_delay_seconds=0.25
            )
        return ledger.attempted_at

    assert virtual_time.run(start_up()) == [0.0, 0.25, 0.5, 0.75]


async def _tried_again(door: Relay, opening: asyncio.Task[Runtime]) -> None:
    """Until the door dropped a second connection, or the opening ended (it should not have:
    awaiting it then raises what ended it)."""
    waiting = asyncio.ensure_future(door.dropped_twice.wait())
    await asyncio.wait({waiting, opening}, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    if opening.done():
        await opening


async def test_start_up_waits_for_a_postgres_and_a_redis_that_answer_later(
    empty_database: str, tmp_path: Path
) -> None:
    """Opening tries again, whole, while Postgres and then Redis drop its connections (as
    while they restart), and opens once they answer; the hang guard only bounds the test."""
    await migrate(empty_database)
    postgres = Relay(urlsplit(empty_database).netloc.rpartition("@")[2], is_open=False)
    redis = Relay(redis_server.redis_address, is_open=False)
    settings = load_settings(
        {
            "DATABASE_URL": urlsplit(empty_database)
            ._replace(netloc=f"postgres@127.0.0.1:{postgres.port}")
            .geturl(),
            "REDIS_URL": f"redis://127.0.0.1:{redis.port}/11",
            "KOVRA_DATA_DIR": str(tmp_path),
        }
    )
    async with asyncio.timeout(120), postgres.serving(), redis.serving():
        opening = asyncio.create_task(open_runtime(settings, retry_delay_seconds=0.05))
        await _tried_again(postgres, opening)
        postgres.is_open = True
        await _tried_again(redis, opening)
        redis.is_open = True
        runtime = await opening
        try:
            assert await runtime.pool.fetchval("SELECT 1") == 1
            assert await runtime.redis.ping()
        finally:
            await runtime.close()


async def test_start_up_fails_at_once_on_a_database_that_does_not_exist(tmp_path: Path) -> None:
    """A misconfiguration is not waited for: the hang guard is far shorter than the wait."""
    settings = load_settings(
        {
            "DATABASE_URL": database_url(f"kovra_missing_{secrets.token_hex(4)}"),
            "REDIS_URL": redis_server.redis_url(11),
            "KOVRA_DATA_DIR": str(tmp_path),
        }
    )
    async with asyncio.timeout(30):
        with pytest.raises(asyncpg.InvalidCatalogNameError):
            await open_runtime(settings, wait_seconds_max=600, retry_delay_seconds=0.05)
