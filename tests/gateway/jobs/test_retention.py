"""Retention sweeps on a real, migrated Postgres: finished webhook deliveries (with their
attempts), events without a delivery left, and idempotency records older than their
retention are deleted; recent rows, a pending delivery and its event are kept; a sweep
deletes at most its batch per table, oldest first, and sweeping again finishes the job;
the policy and its settings refuse retentions out of bounds, naming the variable; and
`kovra retention sweep` does the whole job from the command line."""

from __future__ import annotations

import asyncio
import datetime
import json
import uuid
from pathlib import Path

import asyncpg
import pytest

from gateway.infra.database.migrate import migrate
from gateway.jobs.retention import Retention, Swept, sweep
from gateway.settings import SettingsError, load_settings
from gateway.tenancy.records import create_tenant
from ledger.invariants import InvariantViolation
from tests import redis_server
from tests.gateway.kovra_cli import run_kovra
from tests.gateway.webhooks.conftest import add_endpoint, add_events

now = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=datetime.UTC)
long_ago = now - datetime.timedelta(days=40)


async def _age(pool: asyncpg.Pool, table: str, ids: list[uuid.UUID], moment: object) -> None:
    column = "event_id" if table == "webhook_deliveries" else "id"
    # Table and column names are this test's constants.
    await pool.execute(
        f"UPDATE {table} SET created_at = $2 WHERE {column} = ANY($1::uuid[])",
        ids,
        moment,
    )


async def _finish(pool: asyncpg.Pool, event_ids: list[uuid.UUID], status: str) -> None:
    """Mark the events' deliveries finished, with one attempt each, as the worker does."""
    await pool.execute(
        """UPDATE webhook_deliveries SET status = $2, next_attempt_at = NULL, attempt = 1
            WHERE event_id = ANY($1::uuid[])""",
        event_ids,
        status,
    )
    await pool.execute(
        """INSERT INTO webhook_attempts (delivery_id, attempt, outcome, duration_ms)
           SELECT id, 1, $2, 12 FROM webhook_deliveries WHERE event_id = ANY($1::uuid[])""",
        event_ids,
        status,
    )


async def _idempotency_record(pool: asyncpg.Pool, tenant_id: int, moment: object) -> str:
    key = uuid.uuid4().hex
    await pool.execute(
        """INSERT INTO idempotency_records (tenant_id, idempotency_key, request_fingerprint,
               response_status, response_body, created_at)
           VALUES ($1, $2, $3, 201, $4, $5)""",
        tenant_id,
        key,
        b"\x00" * 32,
        json.dumps({"id": key}).encode(),
        moment,
    )
    return key


async def _ids(pool: asyncpg.Pool, query: str) -> set[object]:
    return {row[0] for row in await pool.fetch(query)}


async def test_a_sweep_deletes_only_what_is_past_its_retention(pool: asyncpg.Pool) -> None:
    tenant = await create_tenant(pool, name="old", tier="growth", compliance_region="EU")
    (quiet,) = await add_events(pool, tenant.id, ["transfer.completed"])  # No endpoint yet.
    await add_endpoint(pool, tenant.id, "https://hooks.example.com/kovra")
    delivered, dead, pending, recent = await add_events(
        pool,
        tenant.id,
        ["transfer.completed", "transfer.refunded", "transfer.processing", "transfer.completed"],
    )
    await _finish(pool, [delivered, recent], "delivered")
    await _finish(pool, [dead], "dead")
    old = [quiet, delivered, dead, pending]
    await _age(pool, "events", old, long_ago)
    await _age(pool, "webhook_deliveries", old, long_ago)
    old_key = await _idempotency_record(pool, tenant.id, now - datetime.timedelta(days=8))
    new_key = await _idempotency_record(pool, tenant.id, now - datetime.timedelta(days=6))

    swept = await sweep(pool, Retention(event_days=30, idempotency_days=7), now=now)

    assert swept == Swept(deliveries=2, events=3, idempotency_records=1)
    assert await _ids(pool, "SELECT id FROM events") == {pending, recent}
    assert await _ids(pool, "SELECT event_id FROM webhook_deliveries") == {pending, recent}
    attempts = await _ids(
        pool,
        """SELECT d.event_id FROM webhook_attempts a
             JOIN webhook_deliveries d ON d.id = a.delivery_id""",
    )
    assert attempts == {recent}
    assert await pool.fetchval("SELECT count(*) FROM webhook_attempts") == 1
    assert await _ids(pool, "SELECT idempotency_key FROM idempotency_records") == {new_key}
    assert old_key != new_key
    again = await sweep(pool, Retention(event_days=30, idempotency_days=7), now=now)
    assert again == Swept(deliveries=0, events=0, idempotency_records=0)


async def test_sweeps_delete_in_bounded_batches_oldest_first(pool: asyncpg.Pool) -> None:
    tenant = await create_tenant(pool, name="many", tier="growth", compliance_region="EU")
    events = await add_events(pool, tenant.id, ["transfer.completed"] * 7)
    for age_days, event in enumerate(events, start=31):
        await _age(pool, "events", [event], now - datetime.timedelta(days=age_days))
    retention = Retention(event_days=30)
    counts = [(await sweep(pool, retention, now=now, batch_size=3)).events for _ in range(4)]
    assert counts == [3, 3, 1, 0]
    first = await sweep(pool, retention, now=now, batch_size=1)
    assert first.events == 0
    events = await add_events(pool, tenant.id, ["transfer.completed"] * 2)
    await _age(pool, "events", [events[0]], now - datetime.timedelta(days=50))
    await _age(pool, "events", [events[1]], now - datetime.timedelta(days=40))
    await sweep(pool, retention, now=now, batch_size=1)
    assert await _ids(pool, "SELECT id FROM events") == {events[1]}


def test_retentions_are_bounded_and_named_in_settings() -> None:
    with pytest.raises(InvariantViolation):
        Retention(event_days=0)
    with pytest.raises(InvariantViolation):
        Retention(idempotency_days=366)
    with pytest.raises(SettingsError) as raised:
        load_settings({"KOVRA_EVENT_RETENTION_DAYS": "0", "KOVRA_IDEMPOTENCY_RETENTION_DAYS": "x"})
    assert "KOVRA_EVENT_RETENTION_DAYS" in str(raised.value)
    assert "KOVRA_IDEMPOTENCY_RETENTION_DAYS" in str(raised.value)
    settings = load_settings({"KOVRA_EVENT_RETENTION_DAYS": "90"})
    assert settings.retention == Retention(event_days=90, idempotency_days=7)


async def test_the_cli_sweeps_everything_past_retention(
    empty_database: str, tmp_path: Path
) -> None:
    await migrate(empty_database)
    pool = await asyncpg.create_pool(empty_database, min_size=1, max_size=2)
    try:
        tenant = await create_tenant(pool, name="cli", tier="growth", compliance_region="EU")
        events = await add_events(pool, tenant.id, ["transfer.completed"] * 3)
        await _age(pool, "events", events[:2], long_ago)
        result = await asyncio.to_thread(
            run_kovra,
            ["retention", "sweep"],
            {
                "DATABASE_URL": empty_database,
                "REDIS_URL": redis_server.redis_url(12),
                "KOVRA_DATA_DIR": str(tmp_path),
            },
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {
            "deliveries": 0,
            "events": 2,
            "idempotency_records": 0,
        }
        assert await _ids(pool, "SELECT id FROM events") == {events[2]}
    finally:
        await pool.close()
