"""The schedules worker: a due pass at the current instant, again and again, sleeping only
when a pass started and skipped nothing. Passes in any number of processes share the work
(`gateway.schedules.service`: claims skip rows another pass holds)."""

from __future__ import annotations

import asyncio
import datetime

import structlog

from gateway.schedules.service import Schedules

log = structlog.get_logger("kovra.schedules.worker")
# Cron schedules have minute resolution; a pass a second keeps a due occurrence at most
# that late without polling Postgres hard.
idle_seconds_default = 1.0


async def run_forever(schedules: Schedules, *, idle_seconds: float = idle_seconds_default) -> None:
    """Run due passes until cancelled."""
    while True:
        try:
            report = await schedules.run_due(datetime.datetime.now(tz=datetime.UTC))
            worked = len(report.started) + len(report.skipped)
            if report.started:
                log.info("schedules_started", started=len(report.started))
        except Exception:
            log.exception("schedules_pass_failed")
            worked = 0
        if worked == 0:
            await asyncio.sleep(idle_seconds)
