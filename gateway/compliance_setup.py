"""Compliance for a gateway or worker process: the check chosen by configuration, built
from the sanctions lists operators loaded into Postgres (`kovra sanctions load`) and the
files named in `KOVRA_SANCTIONS_FILES`."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import msgspec

from compliance.checks import CachedCheck, NoOpCheck, RuleBasedCheck
from compliance.decisions import ComplianceCheck
from compliance.sanctions.lists import SanctionedParty, load_ofac, load_simple_csv
from compliance.sanctions.screening import SanctionsIndex, ScreeningThresholds
from gateway.settings import Settings

load_batch_size = 5_000


def load_file(path: Path) -> list[SanctionedParty]:
    """A folder holds OFAC's sdn.csv and alt.csv; a file is the simple CSV format."""
    return load_ofac(path) if path.is_dir() else load_simple_csv(path)


async def stored_parties(pool: asyncpg.Pool) -> list[SanctionedParty]:
    rows = await pool.fetch("SELECT party FROM sanctions_parties ORDER BY list_name, entry_id")
    return [msgspec.json.decode(row["party"], type=SanctionedParty) for row in rows]


async def store_list(pool: asyncpg.Pool, parties: list[SanctionedParty]) -> int:
    """Replace each list named in `parties` with these entries, in one transaction."""
    names = sorted({party.list_name for party in parties})
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(
            "DELETE FROM sanctions_parties WHERE list_name = ANY($1::text[])", names
        )
        for start in range(0, len(parties), load_batch_size):
            batch = parties[start : start + load_batch_size]
            await connection.executemany(
                "INSERT INTO sanctions_parties (list_name, entry_id, party) VALUES ($1, $2, $3) "
                "ON CONFLICT (list_name, entry_id) DO UPDATE SET party = EXCLUDED.party",
                [(p.list_name, p.entry_id, json.dumps(msgspec.to_builtins(p))) for p in batch],
            )
    return len(parties)


async def build_check(settings: Settings, pool: asyncpg.Pool) -> ComplianceCheck:
    if settings.compliance_mode == "noop":
        return NoOpCheck()
    parties = await stored_parties(pool)
    for path in settings.sanctions_files:
        parties.extend(load_file(Path(path)))
    # One set of thresholds serves both the index (which hits it returns) and the check
    # (what a hit means), so a lowered review score is never silently cut off by the index.
    thresholds = ScreeningThresholds(
        block_at=float(settings.screening_block_score),
        review_at=float(settings.screening_review_score),
    )
    check: ComplianceCheck = RuleBasedCheck(
        SanctionsIndex.build(parties, thresholds=thresholds), thresholds=thresholds
    )
    if settings.compliance_cache_seconds:
        check = CachedCheck(check, seconds=settings.compliance_cache_seconds)
    return check
