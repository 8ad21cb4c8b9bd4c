"""The configured compliance check screens against the lists stored in Postgres and named
in `KOVRA_SANCTIONS_FILES`; a list loaded later (`kovra sanctions load`) reaches a running
process at its next refresh, and a refresh with nothing new rebuilds nothing."""

from __future__ import annotations

import json

import asyncpg
import structlog
import structlog.testing

from compliance.checks import NoOpCheck, RuleBasedCheck
from compliance.sanctions.lists import SanctionedParty
from compliance.setup import build_check, screening_disabled_action, store_list
from gateway.settings import load_settings


def party(name: str, entry_id: str) -> SanctionedParty:
    return SanctionedParty(
        list_name="KOVRA UNIT LIST",
        entry_id=entry_id,
        name=name,
        aliases=(),
        kind="entity",
        country="AE",
        programs=(),
    )


async def test_a_list_loaded_later_reaches_the_running_check(pool: asyncpg.Pool) -> None:
    settings = load_settings({"KOVRA_SANCTIONS_REFRESH_SECONDS": "1"})
    check, lists = await build_check(settings, pool)
    assert isinstance(check, RuleBasedCheck)
    assert lists is not None
    before = await check.screen_party(name="Quillmark Shipping Holdings", country="AE")
    assert before.outcome == "approve"
    assert await lists.refresh_once() is False

    await store_list(pool, [party("Quillmark Shipping Holdings", "1")])
    assert await lists.refresh_once() is True
    after = await check.screen_party(name="Quillmark Shipping Holdings", country="AE")
    assert after.outcome == "block"
    assert after.reasons == ("sanctions_match:KOVRA UNIT LIST:1",)
    assert await lists.refresh_once() is False

    # Replacing the list with one that no longer names the party lifts the block.
    await store_list(pool, [party("Ostrava Lumen Trading", "2")])
    assert await lists.refresh_once() is True
    lifted = await check.screen_party(name="Quillmark Shipping Holdings", country="AE")
    assert lifted.outcome == "approve"


async def test_noop_mode_has_no_lists_to_refresh(pool: asyncpg.Pool) -> None:
    check, lists = await build_check(load_settings({"KOVRA_COMPLIANCE_MODE": "noop"}), pool)
    assert isinstance(check, NoOpCheck)
    assert lists is None
    decision = await check.screen_party(name="anyone", country="DE")
    assert decision.reasons == ("compliance_checks_disabled",)


async def test_every_start_without_screening_is_logged_and_audited(pool: asyncpg.Pool) -> None:
    """Two starts with screening off leave two audit records carrying the reason, each
    also logged as critical; a start with screening on leaves none."""
    reason = "INC-4711: screening provider outage, approved by the MLRO"
    settings = load_settings(
        {"KOVRA_COMPLIANCE_MODE": "noop", "KOVRA_COMPLIANCE_NOOP_REASON": reason}
    )
    await build_check(load_settings({}), pool)
    with structlog.testing.capture_logs() as logs:
        for _ in range(2):
            await build_check(settings, pool)
    announced = [entry for entry in logs if entry["event"] == "compliance_screening_disabled"]
    assert [(entry["log_level"], entry["reason"]) for entry in announced] == [
        ("critical", reason),
        ("critical", reason),
    ]
    rows = await pool.fetch(
        "SELECT actor, target, details FROM audit_records WHERE action = $1 ORDER BY seq",
        screening_disabled_action,
    )
    assert len(rows) == 2
    for row in rows:
        assert row["target"] == "KOVRA_COMPLIANCE_MODE=noop"
        details = json.loads(row["details"])
        assert (details["reason"], details["environment"]) == (reason, "sandbox")
