"""A batch counts against the tenant's daily limit once, whatever happens to its attempts,
and an undone batch holds nothing, even when it is sent again.

Through the gateway's ASGI app in this process, against real Postgres, Redis and the
embedded ledger:
- a batch whose response was lost (its idempotency record gone) and that is sent again runs
  again, finds the batch recorded, and counts nothing a second time;
- a batch whose attempt died after the ledger and before Postgres (the failure injected where
  Postgres would be written, or before the items are held, with the attempt's own give-back
  disabled, as a killed process gives nothing back) is undone by the repair, which gives its
  count back; sent again, the batch is refused as `batch_abandoned`, keeps nothing counted
  either, and leaves nothing held: the holds the retry made again (for items the dead
  attempt never held) are voided.
Each step checks the day counter against the batches that really moved money, and the
wallet and the clearing account against the one recorded batch.

This is the in-process unit test; `tests/gateway/e2e/test_batch_crash_safety.py` is the
proof, killing a real gateway mid-acceptance.
"""

from __future__ import annotations

import asyncio
import datetime
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.batches import service as accept
from gateway.batches.repair import repair_once
from gateway.http.ids import decode_id
from gateway.jobs.worker import batch_repair
from gateway.runtime import Runtime
from ledger.netting import Netting
from loadtest.bench_gateway import provision_unthrottled_tenant
from loadtest.provisioning import liquidity_minor, recipients
from tests import redis_server
from tests.postgres import in_process_app

redis_url = redis_server.redis_url(7)  # This module's own database, emptied around it.
deposit_minor = 10_000_000


class _Killed(Exception):
    """The attempt stops where a killed process would, before Postgres."""


@pytest.mark.parametrize("dies_in", ["record_batch", "_hold_items"])
async def test_a_batch_counts_once_across_lost_answers_crashes_and_repair(
    dies_in: str, empty_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with in_process_app(
        empty_database,
        tmp_path,
        monkeypatch,
        redis_url=redis_url,
        environment={"KOVRA_RECONCILE_AFTER_SECONDS": "1"},
        timeout_seconds=120,
    ) as (app, client):
        await _count_once(client, app.state.runtime, monkeypatch, dies_in=dies_in)


async def _count_once(
    client: httpx.AsyncClient,
    services: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    *,
    dies_in: str,
) -> None:
    key = await provision_unthrottled_tenant(
        client, deposits={"EUR": deposit_minor}, liquidity={"IDR": liquidity_minor["IDR"]}
    )
    headers = {"Authorization": f"Bearer {key}"}
    recipient = await client.post("/v1/recipients", headers=headers, json=recipients["IDR"])
    assert recipient.status_code == 201, recipient.text
    items = [
        {
            "recipient_id": recipient.json()["id"],
            "source_currency": "EUR",
            "target_currency": "IDR",
            "reference": f"item {index}",
            "source_amount": 10_000 * (index + 1),
        }
        for index in range(3)
    ]

    async def send(idempotency_key: str) -> httpx.Response:
        return await client.post(
            "/v1/batches",
            headers={**headers, "Idempotency-Key": idempotency_key},
            json={"items": items},
        )

    recorded = await send("lost-answer")
    assert recorded.status_code == 201, recorded.text
    counted = await _day_usd_minor(services)
    assert counted > 0
    wallet = await _eur_available(client, headers)
    # The answer is lost: the idempotency record goes, and the client sends the batch again.
    await services.redis.delete(*[k async for k in services.redis.scan_iter("*lost-answer*")])
    again = await send("lost-answer")
    assert again.status_code == 201, again.text
    assert again.json()["id"] == recorded.json()["id"]
    assert await _day_usd_minor(services) == counted

    tenant_id = await services.pool.fetchval(
        "SELECT tenant_id FROM batches WHERE id = $1",
        uuid.UUID(int=decode_id("batch", recorded.json()["id"])),
    )
    clearing = await _clearing(services, tenant_id)
    with monkeypatch.context() as killed:
        killed.setattr(accept, dies_in, _killed)
        killed.setattr(services.limits, "give_back_many", _gives_nothing_back)
        died = await send("died")
    assert died.status_code == 500, died.text
    assert await _day_usd_minor(services) > counted  # The dead attempt's count stayed.
    await asyncio.sleep(1.1)  # Older than the repair's delay.
    assert await repair_once(batch_repair(services)) == 1
    assert await _day_usd_minor(services) == counted
    refused = await send("died")
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "batch_abandoned"
    assert await _day_usd_minor(services) == counted
    assert await _eur_available(client, headers) == wallet
    # The refused retry held its items again, and voided every hold: the clearing account
    # holds what the recorded batch holds, and nothing more.
    assert await _clearing(services, tenant_id) == clearing


async def _clearing(services: Runtime, tenant_id: int) -> tuple[int, int]:
    """The tenant's EUR clearing account: its posted balance and what is pending on it."""
    (account,) = await services.ledger_client.lookup_accounts(
        [Netting(services.ledger).clearing_id(tenant_id, "EUR")]
    )
    return int(account.credits_posted - account.debits_posted), int(account.debits_pending)


async def _killed(*_: Any, **__: Any) -> None:
    raise _Killed


async def _gives_nothing_back(*_: Any, **__: Any) -> None:
    return None


async def _day_usd_minor(services: Runtime) -> int:
    """Today's counted volume of the one tenant in this module's Redis."""
    day = datetime.datetime.now(tz=datetime.UTC).strftime("%Y%m%d")
    keys = [key async for key in services.redis.scan_iter(f"kovra:limit:day:*:{day}")]
    assert len(keys) <= 1, keys
    return int(await services.redis.get(keys[0]) or 0) if keys else 0


async def _eur_available(client: httpx.AsyncClient, headers: dict[str, str]) -> int:
    balances = (await client.get("/v1/balances", headers=headers)).json()["data"]
    (eur,) = [balance for balance in balances if balance["currency"] == "EUR"]
    assert eur["pending"] == 0
    available: int = eur["available"]
    return available
