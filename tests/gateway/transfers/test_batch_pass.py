"""One pass of the lifecycle worker drives a whole batch with a fixed number of Postgres
statements, whatever its size, and each transfer ends where its rail's answer leads.

Transfers made through `POST /v1/transfers` (the gateway's app in this process, real
Postgres, Redis and the embedded ledger), then one pass against the sandbox rails (a real
`CorridorRouter` over `SandboxRail`s with their Redis memory): the accepted ones are
`completed` with their ledger legs settled, the rejected ones `refunded` with the wallet
whole, the silent ones `pending_rail`; every attempt's pacs.008 and `transfer.submitted`
event was recorded, each status report stored once. The pool the pass writes through counts
its statements (the real pool answers them): three for the pass (claim, record the attempts,
move them), the same for 3 transfers as for 30.
"""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from gateway.http.ids import encode_id
from gateway.jobs.worker import lifecycle
from gateway.runtime import Runtime
from gateway.transfers.rails_setup import build_rail
from gateway.transfers.worker import Lifecycle, process_due
from tests import redis_server
from tests.gateway.transfers.paying import eur_payout, paying_tenant
from tests.postgres import in_process_app

redis_url = redis_server.redis_url(2)  # This module's own database, emptied around it.
statements_per_pass = 3
deposit_minor = 10_000_000


class _CountingPool:
    """The real pool, counting the statements sent through it."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.statements = 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._pool, name)
        if name in ("execute", "executemany", "fetch", "fetchrow", "fetchval"):
            self.statements += 1
        return method


@pytest.mark.parametrize("per_kind", [1, 10])
async def test_a_pass_drives_a_batch_in_a_fixed_number_of_statements(
    empty_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, per_kind: int
) -> None:
    async with in_process_app(empty_database, tmp_path, monkeypatch, redis_url=redis_url) as (
        app,
        client,
    ):
        services: Runtime = app.state.runtime
        headers = await paying_tenant(client, deposit_minor=deposit_minor)
        references = {
            "INV-accepted": "completed",
            "sandbox:reject:AC04": "refunded",
            "sandbox:timeout:1": "pending_rail",
        }
        made = {
            await eur_payout(client, headers, reference=reference): expected
            for reference, expected in references.items()
            for _ in range(per_kind)
        }
        counting = _CountingPool(services.pool)
        driving = lifecycle(services)
        driving = Lifecycle(
            pool=counting,  # type: ignore[arg-type]
            ledger=driving.ledger,
            recipients=driving.recipients,
            pending_rail_base_ms=driving.pending_rail_base_ms,
            lease_seconds=driving.lease_seconds,
        )
        rail = build_rail(services.settings, redis=services.redis)
        assert await process_due(driving, rail) == len(made)
        assert counting.statements == statements_per_pass
        rows = await services.pool.fetch(
            "SELECT id, status, attempt FROM transfers WHERE id = ANY($1::uuid[])", list(made)
        )
        assert {row["id"]: row["status"] for row in rows} == made
        assert {row["attempt"] for row in rows} == {1}
        await _check_records(services.pool, made)
        await _check_money(client, headers, made)


async def _check_records(pool: asyncpg.Pool, made: dict[uuid.UUID, str]) -> None:
    events = await pool.fetch(
        "SELECT object_id, type FROM events WHERE object_id = ANY($1::uuid[])", list(made)
    )
    by_transfer: dict[uuid.UUID, Counter[str]] = {}
    for event in events:
        by_transfer.setdefault(event["object_id"], Counter())[event["type"]] += 1
    expected_events = {
        "completed": {"transfer.completed"},
        "refunded": {"transfer.rail_rejected", "transfer.refunded"},
        "pending_rail": {"transfer.pending_rail"},
    }
    for transfer_id, status in made.items():
        seen = by_transfer[transfer_id]
        assert (
            set(seen) == {"transfer.processing", "transfer.submitted"} | expected_events[status]
        ), (status, seen)
        assert set(seen.values()) == {1}, seen
    messages = await pool.fetch(
        """SELECT transfer_id, message_type FROM transfer_messages
            WHERE transfer_id = ANY($1::uuid[])""",
        list(made),
    )
    stored = Counter((m["transfer_id"], m["message_type"]) for m in messages)
    for transfer_id, status in made.items():
        assert stored[transfer_id, "pacs.008"] == 1
        assert stored[transfer_id, "pacs.002"] == (0 if status == "pending_rail" else 1)


async def _check_money(
    client: httpx.AsyncClient, headers: dict[str, str], made: dict[uuid.UUID, str]
) -> None:
    """Accepted payouts left the wallet (amount and fee), refused ones came back whole, and
    silent ones are still held."""
    balances = await client.get("/v1/balances", headers=headers)
    (eur,) = [b for b in balances.json()["data"] if b["currency"] == "EUR"]
    transfers = [
        (await client.get(f"/v1/transfers/{encode_id('tr', t.int)}", headers=headers)).json()
        for t in made
    ]
    cost = {t["id"]: t["source"]["amount"] + t["fee"]["amount"] for t in transfers}
    spent = sum(cost[t["id"]] for t in transfers if t["status"] == "completed")
    held = sum(cost[t["id"]] for t in transfers if t["status"] == "pending_rail")
    assert eur["pending"] == held
    assert eur["posted"] == deposit_minor - spent
