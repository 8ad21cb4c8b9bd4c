"""`kovra schedules run --at` through a real process against real Postgres and Redis: the
occurrence due at the instant starts one run and is printed as JSON; run again at the same
instant, it starts nothing more; before the instant, nothing is due."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import asyncpg
from redis.asyncio import Redis

from gateway.infra.database.migrate import migrate
from tests import redis_server
from tests.gateway.kovra_cli import run_kovra
from tests.gateway.schedules.fixtures import make_setting
from tests.gateway.schedules.test_service import cron_body


async def test_the_due_occurrence_starts_once_however_often_the_command_runs(
    empty_database: str, tmp_path: Path, redis_client: Redis, namespace: str
) -> None:
    await migrate(empty_database)
    pool = await asyncpg.create_pool(empty_database, min_size=1, max_size=2)
    try:
        setting = await make_setting(pool, redis_client, namespace)
        mandate = await setting.mandate()
        schedule = await setting.create(
            setting.schedules(),
            cron_body(mandate, cron="30 6 * * 1-5", tz="Asia/Jakarta"),
            now=datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC),
        )
        environment = {
            "DATABASE_URL": empty_database,
            "REDIS_URL": redis_server.redis_url(12),
            "KOVRA_DATA_DIR": str(tmp_path),
        }
        # Created at midnight UTC on Monday 1 June 2026 (07:00 in Jakarta, UTC+7), it is next due
        # at 06:30 on Tuesday 2 June in Jakarta: 23:30 UTC on the Monday.
        early = run_kovra(["schedules", "run", "--at", "2026-06-01T23:29:00Z"], environment)
        assert early.returncode == 0, early.stderr
        assert json.loads(early.stdout)["started"] == []
        first = run_kovra(["schedules", "run", "--at", "2026-06-02T06:30:00+07:00"], environment)
        assert first.returncode == 0, first.stderr
        (started,) = json.loads(first.stdout)["started"]
        assert started["schedule_id"] == schedule.id
        assert started["occurrence_at"] == "2026-06-01T23:30:00Z"
        assert started["orchestration_id"].startswith("orc_")
        again = run_kovra(["schedules", "run", "--at", "2026-06-01T23:30:00Z"], environment)
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["started"] == []
        runs = await pool.fetch("SELECT id, trigger FROM orchestrations")
        assert [r["trigger"] for r in runs] == ["schedule"]
    finally:
        await pool.close()
