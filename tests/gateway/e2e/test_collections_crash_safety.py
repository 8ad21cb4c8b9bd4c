"""A worker killed between the providers' answers and the ledger's credit: the collections'
`succeeded` notifications are stored by the gateway while the ledger server is down (so no
pass can credit them), the worker is killed with SIGKILL mid-way, the ledger and a new worker
come back, and every collection ends `succeeded` with the wallet credited exactly once, to
the minor unit, and one `collection.succeeded` event each. Real processes throughout
(`tests.gateway.e2e.stack`)."""

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

from tests import redis_server
from tests.gateway.e2e.conftest import admin_token
from tests.gateway.e2e.stack import Stack

collections_count = 5
amount_minor = 1_234
wait_seconds_max = 60.0
poll_seconds = 0.2


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    running = Stack(tmp_path, redis_url=redis_server.redis_url(5))
    try:
        running.start()
        yield running
    finally:
        running.close()


def _rows(stack: Stack, sql: str) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(stack.database_url)
        try:
            return await connection.fetch(sql)
        finally:
            await connection.close()

    return asyncio.run(run())


def _until(check: Any, what: str) -> None:
    deadline = time.monotonic() + wait_seconds_max
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(poll_seconds)


def _post(stack: Stack, path: str, body: dict[str, Any], key: str) -> dict[str, Any]:
    answer = httpx.post(
        f"{stack.base}{path}", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    assert answer.status_code in (200, 201), answer.text
    found: dict[str, Any] = answer.json()
    return found


def _get(stack: Stack, path: str, key: str) -> dict[str, Any]:
    answer = httpx.get(
        f"{stack.base}{path}", headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def _active_mandate(stack: Stack, key: str) -> dict[str, Any]:
    customer = _post(stack, "/v1/customers", {"name": "Erika Mustermann", "country": "DE"}, key)
    consent = {
        "accepted_at": datetime.datetime.now(tz=datetime.UTC).isoformat(),
        "ip": "203.0.113.7",
        "user_agent": "crash test",
    }
    mandate = _post(
        stack,
        "/v1/mandates",
        {
            "customer_id": customer["id"],
            "provider": "sepa_dd",
            "currency": "EUR",
            "bank_details": {"iban": "DE89370400440532013000", "bic": "COBADEFFXXX"},
            "reference": "crash",
            "consent": consent,
        },
        key,
    )
    path = f"/v1/mandates/{mandate['id']}"
    _until(lambda: _get(stack, path, key)["status"] == "active", "the mandate to be active")
    return mandate


def test_a_worker_killed_before_the_credit_credits_once_when_it_is_back(stack: Stack) -> None:
    created = _post(stack, "/admin/v1/tenants", {"name": "crash-collections"}, admin_token)
    key = str(created["api_key"])
    mandate = _active_mandate(stack, key)
    stack.kill(stack.ledger)
    collections = [
        _post(
            stack,
            f"/v1/mandates/{mandate['id']}/collect",
            {"amount": amount_minor, "reference": f"crash {n}"},
            key,
        )
        for n in range(collections_count)
    ]

    def answered() -> bool:
        rows = _rows(
            stack,
            "SELECT count(*) AS n FROM provider_notifications"
            " WHERE type = 'collection.succeeded' AND status = 'pending'",
        )
        return int(rows[0]["n"]) == collections_count

    _until(answered, "the providers' answers, stored while the ledger is down")
    stack.kill(stack.worker)
    for collection in collections:  # Nothing was credited or written.
        assert _get(stack, f"/v1/collections/{collection['id']}", key)["status"] == "pending"
    stack.start_ledger()
    stack.start_worker()
    for collection in collections:
        path = f"/v1/collections/{collection['id']}"
        _until(lambda path=path: _get(stack, path, key)["status"] == "succeeded", path)
    balances = _get(stack, "/v1/balances", key)["data"]
    (eur,) = [balance for balance in balances if balance["currency"] == "EUR"]
    assert eur["posted"] == collections_count * amount_minor
    events = _rows(
        stack,
        "SELECT object_id, count(*) AS n FROM events WHERE type = 'collection.succeeded'"
        " GROUP BY object_id",
    )
    assert sorted(int(row["n"]) for row in events) == [1] * collections_count
