"""`kovra migrate`: apply the plain-SQL migrations in `migrations/`, once, in order.

Safe to run from several processes at once: a session advisory lock serialises runners,
and each migration commits together with its `schema_migrations` row. A migration that was
applied and later edited is refused (its checksum differs) rather than silently skipped.
"""

from __future__ import annotations

import hashlib
from importlib import resources

import asyncpg

# An arbitrary, fixed key shared by every Kovra process: "kovra" in ASCII.
migration_lock_key = 0x6B6F767261
connect_timeout_seconds = 10


class MigrationError(RuntimeError):
    """The database's migration history does not match the migrations Kovra ships."""


def available_migrations() -> list[tuple[str, str]]:
    """(version, sql) of every shipped migration, in version order."""
    folder = resources.files("gateway.infra.database").joinpath("migrations")
    found = [
        (entry.name.removesuffix(".sql"), entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    ]
    return sorted(found)


def _checksum(sql: str) -> str:
    return hashlib.sha256(sql.encode()).hexdigest()


async def migrate(database_url: str) -> list[str]:
    """Apply every migration not yet applied; return the versions applied by this call."""
    connection = await asyncpg.connect(database_url, timeout=connect_timeout_seconds)
    try:
        await connection.execute("SELECT pg_advisory_lock($1)", migration_lock_key)
        try:
            return await _apply_pending(connection)
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", migration_lock_key)
    finally:
        await connection.close()


async def _apply_pending(connection: asyncpg.Connection) -> list[str]:
    await connection.execute(
        """CREATE TABLE IF NOT EXISTS schema_migrations (
               version    text PRIMARY KEY,
               checksum   text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now())"""
    )
    rows = await connection.fetch("SELECT version, checksum FROM schema_migrations")
    applied = {row["version"]: row["checksum"] for row in rows}
    newly_applied: list[str] = []
    for version, sql in available_migrations():
        checksum = _checksum(sql)
        if version in applied:
            if applied[version] != checksum:
                raise MigrationError(f"migration {version} changed after it was applied")
            continue
        async with connection.transaction():
            await connection.execute(sql)
            await connection.execute(
                "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)",
                version,
                checksum,
            )
        newly_applied.append(version)
    unknown = set(applied) - {version for version, _ in available_migrations()}
    if unknown:
        raise MigrationError(f"the database has migrations this Kovra does not: {sorted(unknown)}")
    return newly_applied
