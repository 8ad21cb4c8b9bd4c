"""Watermarks: how far a background scan of the ledger has got, kept in Postgres.

A scan that reads the ledger's transfers in timestamp order (the reconciler's reservations,
the batch repair's pair chains) remembers the last ledger timestamp it settled, so the
next pass starts there instead of at the beginning, and a restarted worker loses nothing.
"""

from __future__ import annotations

import datetime

import asyncpg


async def read_watermark(pool: asyncpg.Pool, name: str) -> int:
    """The ledger timestamp (ns) up to which `name` has been reconciled."""
    value = await pool.fetchval(
        "SELECT ledger_timestamp_ns FROM reconciler_watermarks WHERE name = $1", name
    )
    return 0 if value is None else int(value)


async def advance_watermark(pool: asyncpg.Pool, name: str, timestamp_ns: int) -> None:
    """Record that `name` has been reconciled up to `timestamp_ns` (ledger time)."""
    moment = datetime.datetime.fromtimestamp(timestamp_ns / 1_000_000_000, tz=datetime.UTC)
    await pool.execute(
        """INSERT INTO reconciler_watermarks (name, created_at, ledger_timestamp_ns)
           VALUES ($1, $2, $3)
           ON CONFLICT (name) DO UPDATE SET created_at = EXCLUDED.created_at,
                                            ledger_timestamp_ns = EXCLUDED.ledger_timestamp_ns""",
        name,
        moment,
        timestamp_ns,
    )
