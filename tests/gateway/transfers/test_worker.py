"""A transfer whose step failed for an unexpected reason (here, a rail adapter that raises
instead of answering) is tried again after `failed_step_retry_seconds`, not after its
claim's whole lease: after a dependency blinks, work resumes within seconds.

Through the gateway's app in this process (the transfer is made by `POST /v1/transfers`)
and one pass of the lifecycle worker, against real Postgres, Redis and the embedded ledger.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest

from gateway.jobs.worker import lifecycle
from gateway.runtime import Runtime
from gateway.transfers.records import claim_lease_seconds_default
from gateway.transfers.worker import failed_step_retry_seconds, process_due
from rails.adapter import RailResponse, RailSubmission
from tests import redis_server
from tests.gateway.transfers.paying import eur_payout, paying_tenant
from tests.postgres import in_process_app

redis_url = redis_server.redis_url(15)  # This module's own database, emptied around it.


class _BrokenRail:
    """Rails with a bug: they raise where they should answer."""

    def __init__(self) -> None:
        self.submitted: list[RailSubmission] = []

    async def submit_batch(
        self, submissions: Sequence[RailSubmission]
    ) -> list[RailResponse | None]:
        self.submitted.extend(submissions)
        raise RuntimeError("the rail adapter failed")


async def test_a_failed_step_is_tried_again_soon_not_after_the_lease(
    empty_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with in_process_app(empty_database, tmp_path, monkeypatch, redis_url=redis_url) as (
        app,
        client,
    ):
        services: Runtime = app.state.runtime
        headers = await paying_tenant(client, deposit_minor=1_000_000)
        transfer_id = (await eur_payout(client, headers, reference="broken rail")).int
        rail = _BrokenRail()
        assert await process_due(lifecycle(services), rail) == 1
        assert [s.transfer_id for s in rail.submitted] == [transfer_id]
        row = await services.pool.fetchrow(
            """SELECT status,
                      next_attempt_at <= now() + make_interval(secs => $2) AS soon,
                      next_attempt_at > now() AS later
                 FROM transfers WHERE id = $1""",
            uuid.UUID(int=transfer_id),
            failed_step_retry_seconds,
        )
        assert row is not None
        assert failed_step_retry_seconds < claim_lease_seconds_default
        # Marked submitted (its pacs.008 recorded) before the rail failed; due again soon.
        assert (row["status"], row["soon"], row["later"]) == ("submitted", True, True)
        assert await process_due(lifecycle(services), rail) == 0  # Not due yet.
