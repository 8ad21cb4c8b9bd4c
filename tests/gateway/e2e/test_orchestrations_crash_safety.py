"""A worker killed between a run's allocation and its delivery: a pull through the API, its
collection settled by the sandbox provider's signed notification, the allocation moved into
the buckets, the partner's first answer missing (a flaky sandbox partner), the worker killed
with SIGKILL while the order is held for the partner, a new worker started; the run ends
`completed` with the partner paid exactly once and every amount in the ledger to the minor
unit. Real processes throughout (`tests.gateway.e2e.stack`)."""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from gateway.http.ids import decode_id
from rails.partners.sandbox import SandboxPartner
from tests import redis_server
from tests.gateway.e2e.conftest import admin_token
from tests.gateway.e2e.stack import Stack

amount_minor = 10_001
share_bps = 6_000  # 60% of 10,001, rounded down: 6,000.
wait_seconds_max = 60.0
poll_seconds = 0.1


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    environment = {
        # One try per send and a long backoff: the partner's first "no answer" leaves the
        # order held, and the test has seconds to kill the worker there.
        "KOVRA_PARTNER_SEND_TRIES": "1",
        "KOVRA_PARTNER_ATTEMPTS_MAX": "5",
    }
    running = Stack(tmp_path, redis_url=redis_server.redis_url(6), environment=environment)
    try:
        running.start()
        yield running
    finally:
        running.close()


class Client:
    def __init__(self, stack: Stack, key: str) -> None:
        self.stack = stack
        self.headers = {"Authorization": f"Bearer {key}"}

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = httpx.post(f"{self.stack.base}{path}", json=body, headers=self.headers, timeout=30)
        assert answer.status_code in (200, 201), answer.text
        found: dict[str, Any] = answer.json()
        return found

    def get(self, path: str) -> dict[str, Any]:
        answer = httpx.get(f"{self.stack.base}{path}", headers=self.headers, timeout=30)
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    def until(self, path: str, check: Any, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + wait_seconds_max
        while True:
            found = self.get(path)
            if check(found):
                return found
            assert time.monotonic() < deadline, f"gave up waiting for {what}: {found}"
            time.sleep(poll_seconds)


def _rows(stack: Stack, sql: str) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(stack.database_url)
        try:
            return await connection.fetch(sql)
        finally:
            await connection.close()

    return asyncio.run(run())


def _payments(stack: Stack, partner_id: str, order_id: str) -> int:
    async def run() -> int:
        redis = Redis.from_url(stack.redis_url)
        try:
            sandbox = SandboxPartner(
                partner_id=decode_id("ptn", partner_id), reference="x", redis=redis
            )
            return await sandbox.payments(decode_id("ord", order_id))
        finally:
            await redis.aclose()

    return asyncio.run(run())


def _customer_with_mandate(client: Client) -> tuple[str, str]:
    customer = client.post("/v1/customers", {"name": "Erika Mustermann", "country": "DE"})
    consent = {
        "accepted_at": datetime.datetime.now(tz=datetime.UTC).isoformat(),
        "ip": "203.0.113.7",
        "user_agent": "crash test",
    }
    mandate = client.post(
        "/v1/mandates",
        {
            "customer_id": customer["id"],
            "provider": "sepa_dd",
            "currency": "EUR",
            "bank_details": {"iban": "DE89370400440532013000", "bic": "COBADEFFXXX"},
            "reference": "salary split",
            "consent": consent,
        },
    )
    client.until(f"/v1/mandates/{mandate['id']}", lambda m: m["status"] == "active", "active")
    return customer["id"], mandate["id"]


def test_a_worker_killed_between_allocation_and_delivery_pays_once(stack: Stack) -> None:
    created = httpx.post(
        f"{stack.base}/admin/v1/tenants",
        json={"name": "crash-orchestrations"},
        headers={"Authorization": f"Bearer {admin_token}"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    client = Client(stack, str(created.json()["api_key"]))
    customer, mandate = _customer_with_mandate(client)
    partner = client.post(
        "/v1/partners",
        {
            "kind": "savings",
            "name": "Savings bank",
            "currency": "EUR",
            "adapter": "sandbox",
            "reference": "sandbox:flaky:1",
        },
    )
    bucket = client.post(
        f"/v1/customers/{customer}/buckets",
        {"kind": "savings", "name": "Savings", "currency": "EUR", "partner_id": partner["id"]},
    )
    client.post(
        f"/v1/customers/{customer}/rules",
        {"bucket_id": bucket["id"], "kind": "percentage", "percent_bps": share_bps},
    )
    run = client.post(
        f"/v1/customers/{customer}/pulls", {"mandate_id": mandate, "amount": amount_minor}
    )
    path = f"/v1/orchestrations/{run['id']}"

    def held(found: dict[str, Any]) -> bool:
        orders = found["orders"]
        return bool(orders) and orders[0]["status"] == "reserved" and orders[0]["attempts"] == 1

    client.until(path, held, "the order held after the partner's first silence")
    stack.kill(stack.worker)
    stack.start_worker()
    done = client.until(path, lambda r: r["status"] in ("completed", "failed"), "the run's end")
    assert done["status"] == "completed", done
    assert done["amounts"] == {"collected": amount_minor, "allocated": 6_000, "unallocated": 4_001}
    (order,) = done["orders"]
    assert (order["status"], order["amount"]) == ("delivered", 6_000)
    assert _payments(stack, partner["id"], order["id"]) == 1
    (found_bucket,) = client.get(f"/v1/customers/{customer}/buckets")["data"]
    assert (found_bucket["balance"], found_bucket["delivered"]) == (0, 6_000)
    (eur,) = [b for b in client.get("/v1/balances")["data"] if b["currency"] == "EUR"]
    assert eur["posted"] == amount_minor - 6_000
    events = _rows(
        stack,
        "SELECT type, count(*) AS n FROM events"
        " WHERE type LIKE 'orchestration.%' OR type LIKE 'bucket.%' GROUP BY type",
    )
    assert {row["type"]: int(row["n"]) for row in events} == {
        "orchestration.created": 1,
        "orchestration.collected": 1,
        "orchestration.allocated": 1,
        "orchestration.completed": 1,
        "bucket.created": 1,
        "bucket.credited": 1,
        "bucket.delivered": 1,
    }
