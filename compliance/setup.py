"""Compliance for a gateway or worker process: the check chosen by configuration, built
from the sanctions lists operators loaded into Postgres (`kovra sanctions load`) and the
files named in `KOVRA_SANCTIONS_FILES`. A process started with screening off
(`KOVRA_COMPLIANCE_MODE=noop`, an emergency measure) says so in its log and in the audit
trail every time it starts, with the reason someone gave for it."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from pathlib import Path

import asyncpg
import msgspec
import structlog

from compliance.audit.chain import record_admin_action
from compliance.checks import CachedCheck, NoOpCheck, RuleBasedCheck
from compliance.decisions import ComplianceCheck
from compliance.sanctions.lists import SanctionedParty, load_ofac, load_simple_csv
from compliance.sanctions.screening import SanctionsIndex, ScreeningThresholds
from gateway.settings import Settings
from ledger.invariants import unreachable

log = logging.getLogger("kovra.sanctions")
compliance_log = structlog.get_logger("kovra.compliance")
screening_disabled_action = "compliance.screening_disabled"
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


async def lists_fingerprint(pool: asyncpg.Pool) -> tuple[int, object]:
    """Changes whenever `kovra sanctions load` replaces or adds a list."""
    row = await pool.fetchrow("SELECT count(*), max(loaded_at) FROM sanctions_parties")
    if row is None:
        unreachable("an aggregate always returns one row")
    return (int(row[0]), row[1])


class SanctionsLists:
    """Keeps a running process's sanctions index in step with the lists in Postgres, so a
    list loaded with `kovra sanctions load` applies within `refresh_seconds` everywhere,
    without a restart. Rebuilding happens beside the request path, never in it."""

    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        *,
        check: RuleBasedCheck,
        fingerprint: tuple[int, object],
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._check = check
        self._fingerprint = fingerprint

    async def refresh_once(self) -> bool:
        """Rebuild the index if the stored lists changed; say whether it did."""
        # The fingerprint is read before the parties: a load racing this read costs one
        # extra rebuild next time, never a missed list.
        fingerprint = await lists_fingerprint(self._pool)
        if fingerprint == self._fingerprint:
            return False
        parties = await all_parties(self._settings, self._pool)
        index = await asyncio.to_thread(
            SanctionsIndex.build, parties, thresholds=thresholds_of(self._settings)
        )
        self._check.replace_index(index)
        self._fingerprint = fingerprint
        log.info("sanctions_lists_refreshed", extra={"names": index.name_count})
        return True

    async def run_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.sanctions_refresh_seconds)
            try:
                await self.refresh_once()
            except Exception:
                log.exception("sanctions_lists_refresh_failed")


def thresholds_of(settings: Settings) -> ScreeningThresholds:
    # One set of thresholds serves both the index (which hits it returns) and the check
    # (what a hit means), so a lowered review score is never silently cut off by the index.
    return ScreeningThresholds(
        block_at=float(settings.screening_block_score),
        review_at=float(settings.screening_review_score),
    )


async def all_parties(settings: Settings, pool: asyncpg.Pool) -> list[SanctionedParty]:
    parties = await stored_parties(pool)
    for path in settings.sanctions_files:
        parties.extend(load_file(Path(path)))
    return parties


async def build_check(
    settings: Settings, pool: asyncpg.Pool
) -> tuple[ComplianceCheck, SanctionsLists | None]:
    """The configured check, and (for the rule-based one) what keeps its lists fresh."""
    if settings.compliance_mode == "noop":
        await announce_screening_disabled(settings, pool)
        return NoOpCheck(), None
    fingerprint = await lists_fingerprint(pool)
    thresholds = thresholds_of(settings)
    rules = RuleBasedCheck(
        SanctionsIndex.build(await all_parties(settings, pool), thresholds=thresholds),
        thresholds=thresholds,
    )
    lists = SanctionsLists(settings, pool, check=rules, fingerprint=fingerprint)
    check: ComplianceCheck = rules
    if settings.compliance_cache_seconds:
        check = CachedCheck(rules, seconds=settings.compliance_cache_seconds)
    return check, lists


async def announce_screening_disabled(settings: Settings, pool: asyncpg.Pool) -> None:
    """Log and audit that this process approves every payout unscreened, and why.

    Every start says it again: one forgotten emergency setting must not go quiet after the
    first restart. The record is chained before the process serves anything."""
    details = {
        "environment": settings.environment,
        "reason": settings.compliance_noop_reason or "",
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
    compliance_log.critical("compliance_screening_disabled", **details)
    await record_admin_action(
        pool,
        actor="system:compliance-setup",
        action=screening_disabled_action,
        target="KOVRA_COMPLIANCE_MODE=noop",
        details=details,
    )
