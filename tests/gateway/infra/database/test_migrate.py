"""Migrations apply once, in order, even when several processes run `kovra migrate` at the
same moment; an edited migration is refused; regulated tables are partitioned by region."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import asyncpg
import pytest

from gateway.infra.database import migrate as migrate_module
from gateway.infra.database.migrate import MigrationError, available_migrations, migrate

repository = Path(__file__).resolve().parents[4]


async def test_concurrent_runners_apply_each_migration_once(empty_database: str) -> None:
    command = [sys.executable, "-m", "gateway.cli", "migrate"]
    environment = {
        "DATABASE_URL": empty_database,
        "PYTHONPATH": str(repository),
        "PATH": "/usr/bin:/bin",
    }
    processes = [
        await asyncio.create_subprocess_exec(
            *command,
            env=environment,
            cwd=repository,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(5)
    ]
    outputs = [await process.communicate() for process in processes]
    assert [process.returncode for process in processes] == [0] * 5, outputs
    applied = [out.decode() for out, _ in outputs]
    versions = [version for version, _ in available_migrations()]
    assert sum(f"applied {len(versions)} migration" in text for text in applied) == 1
    assert sum("none pending" in text for text in applied) == 4
    connection = await asyncpg.connect(empty_database)
    try:
        rows = await connection.fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [row["version"] for row in rows] == versions
    finally:
        await connection.close()


async def test_an_edited_migration_is_refused(
    empty_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await migrate(empty_database)
    original = available_migrations()
    edited = [(version, sql + "\n-- edited") for version, sql in original]
    monkeypatch.setattr(migrate_module, "available_migrations", lambda: edited)
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await migrate(empty_database)


async def test_regulated_tables_are_partitioned_by_region(pool: asyncpg.Pool) -> None:
    rows = await pool.fetch(
        """SELECT parent.relname AS parent, child.relname AS child,
                  pg_get_expr(child.relpartbound, child.oid) AS bound
             FROM pg_inherits
             JOIN pg_class parent ON parent.oid = pg_inherits.inhparent
             JOIN pg_class child ON child.oid = pg_inherits.inhrelid
            WHERE parent.relname IN ('holds', 'deposits') ORDER BY child.relname"""
    )
    partitions = {(row["parent"], row["child"]): row["bound"] for row in rows}
    assert partitions == {
        ("deposits", "deposits_eu"): "FOR VALUES IN ('EU')",
        ("deposits", "deposits_id"): "FOR VALUES IN ('ID')",
        ("deposits", "deposits_uk"): "FOR VALUES IN ('UK')",
        ("holds", "holds_eu"): "FOR VALUES IN ('EU')",
        ("holds", "holds_id"): "FOR VALUES IN ('ID')",
        ("holds", "holds_uk"): "FOR VALUES IN ('UK')",
    }
    strategy = await pool.fetchval(
        "SELECT partstrat FROM pg_partitioned_table WHERE partrelid = 'holds'::regclass"
    )
    assert strategy == b"l"  # "char" comes back as bytes: LIST partitioning.


async def test_default_policies_match_the_tiers(pool: asyncpg.Pool) -> None:
    rows = await pool.fetch(
        """SELECT l.name, l.requests_per_minute, l.daily_limit_usd_minor, p.margin_bps
             FROM limit_policies l JOIN pricing_policies p USING (name) ORDER BY l.id"""
    )
    assert [tuple(row) for row in rows] == [
        ("starter", 100, 1_000_000, 150),
        ("growth", 500, 10_000_000, 80),
        ("enterprise", 2_000, 100_000_000, 40),
    ]
