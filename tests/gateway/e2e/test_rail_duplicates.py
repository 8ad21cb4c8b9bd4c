"""No payment reaches its rail twice, however often the worker dies between sending it and
recording the rail's answer.

Transfers and a batch's items are created in waves on a deployment of real processes
(`Stack`: ledger server, gateway, worker; its own Postgres database and Redis database 5).
The sandbox rails answer slowly (`KOVRA_SANDBOX_LATENCY_MS_MAX`), after recording what they
received in their memory in Redis; the test watches the rails' log of receipts and SIGKILLs
the worker the moment a new payment reaches a rail, while the rail has not answered yet,
then starts it again, wave after wave, and at last lets it finish. A short lease
(`KOVRA_TRANSFER_LEASE_SECONDS`) hands a killed worker's transfers to the next one at once.

Then, per transfer: every pacs.008 it sent names one payment (one UETR, one end-to-end id);
its rail received that payment exactly once (the re-sends were duplicates, answered as the
first time) and no identifier was ever reused for another payment (no AM05); the rail's
answer is the transfer's end (accepted: `completed`, rejected: `refunded`), so every
transfer with an ordinary reference is `completed`; no rail received a payment nobody
asked for; duplicate receipts were observed, so the re-send path was really exercised; and
the wallet holds exactly the deposit less the completed payouts, to the minor unit, with
nothing left pending. The test uses no randomness of its own.
"""

from __future__ import annotations

import asyncio
import time
import uuid
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import redis
from redis.asyncio import Redis

from ledger.accounts import AccountType, tenant_account_id
from ledger.clients import RemoteLedgerClient
from rails.corridors import Rail
from rails.iso20022 import pacs008_namespace
from rails.redis_memory import LoggedReceipt, RedisRailMemory
from tests import redis_server
from tests.gateway.e2e.conftest import admin_token, bearer
from tests.gateway.e2e.stack import Stack

redis_database = 5
waves = 5
# A wave is created before the worker starts, so its first pass takes the whole wave as one
# batch, across two corridors: a kill lands in the middle of a batch, some of its payments
# received by their rail, others not yet sent.
transfers_per_wave = 12
# Every reference's path: accepted, rejected, and unanswered once before being accepted.
references = ["INV-plain", "sandbox:reject:AC04", "sandbox:timeout:1"]
batch_items = 4
deposit_minor = 50_000_000
eur = 978
# Slow answers leave the worker time to die between a rail's receipt and its answer.
latency_ms_max = 1_500
lease_seconds = 2
# Guards against a hang, not measurements.
new_payment_wait_seconds = 30
settle_seconds_max = 60
final_statuses = ("completed", "refunded", "cancelled", "blocked")


def test_a_worker_killed_between_sending_and_recording_pays_nothing_twice(
    tmp_path: Path,
) -> None:
    redis_url = redis_server.redis_url(redis_database)
    redis.Redis.from_url(redis_url).flushdb()
    stack = Stack(
        tmp_path,
        redis_url=redis_url,
        environment={
            "KOVRA_SANDBOX_LATENCY_MS_MAX": str(latency_ms_max),
            "KOVRA_TRANSFER_LEASE_SECONDS": str(lease_seconds),
            "KOVRA_PENDING_RAIL_BASE_MS": "20",
        },
    )
    try:
        stack.create_database()
        stack.start_ledger()
        stack.start_gateway()
        tenant_id, headers, recipients = _setup(stack)
        kills = asyncio.run(_kill_on_new_payments(stack, redis_url, headers, recipients))
        stack.start_worker()
        _wait_until_settled(stack)
        asyncio.run(_check(stack, redis_url, tenant_id, kills=kills))
    finally:
        stack.close()


def _setup(stack: Stack) -> tuple[int, dict[str, str], dict[str, str]]:
    """A funded tenant with a recipient in EUR (SEPA Instant) and one in IDR (BI-FAST)."""
    admin = {"Authorization": f"Bearer {admin_token}"}
    for currency, amount in (("IDR", 10**16), ("EUR", 10**12)):
        _created(stack, "/admin/v1/liquidity", {"currency": currency, "amount": amount}, admin)
    tenant = _created(stack, "/admin/v1/tenants", {"name": "rails", "tier": "enterprise"}, admin)
    headers = bearer(tenant["api_key"])
    _created(stack, "/v1/deposits", {"currency": "EUR", "amount": deposit_minor}, headers)
    recipients = {
        "IDR": _created(
            stack,
            "/v1/recipients",
            {
                "name": "PT A",
                "country": "ID",
                "currency": "IDR",
                "bank_details": {"bank_code": "014", "account_number": "1234567890"},
            },
            headers,
        )["id"],
        "EUR": _created(
            stack,
            "/v1/recipients",
            {
                "name": "B GmbH",
                "country": "DE",
                "currency": "EUR",
                "bank_details": {"iban": "DE89370400440532013000", "bic": "COBADEFFXXX"},
            },
            headers,
        )["id"],
    }
    return int(tenant["tenant_id"]), headers, recipients


def _created(stack: Stack, path: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
    response = httpx.post(f"{stack.base}{path}", json=body, headers=headers, timeout=30)
    assert response.status_code == 201, (path, response.text)
    return response.json()


def _create_wave(
    stack: Stack, headers: dict[str, str], recipients: dict[str, str], wave: int
) -> None:
    """A wave of transfers, every reference and both rails in turn; the first wave also
    sends a batch, whose items the worker pays like any transfer."""
    for index in range(transfers_per_wave):
        number = wave * transfers_per_wave + index
        target = ("EUR", "IDR")[number % 2]
        quote = _created(
            stack,
            "/v1/quotes",
            {"source_currency": "EUR", "target_currency": target, "source_amount": 1_000 + number},
            headers,
        )
        _created(
            stack,
            "/v1/transfers",
            {
                "quote_id": quote["id"],
                "recipient_id": recipients[target],
                "reference": references[number % len(references)],
            },
            headers,
        )
    if wave == 0:
        items = [
            {
                "recipient_id": recipients[("EUR", "IDR")[index % 2]],
                "source_currency": "EUR",
                "target_currency": ("EUR", "IDR")[index % 2],
                "source_amount": 2_000 + index,
                "reference": f"batch-item-{index}",
            }
            for index in range(batch_items)
        ]
        batch = _created(stack, "/v1/batches", {"items": items}, headers)
        assert [item["status"] for item in batch["items"]] == ["processing"] * batch_items


async def _kill_on_new_payments(
    stack: Stack, redis_url: str, headers: dict[str, str], recipients: dict[str, str]
) -> int:
    """Wave after wave: create it, start the worker, SIGKILL it the moment a rail receives
    a payment it never had. Returns how many times the worker was killed so."""
    watcher = Redis.from_url(redis_url)  # A blocking read has a client of its own.
    memory = RedisRailMemory(watcher)
    seen = "0-0"
    kills = 0
    try:
        for wave in range(waves):
            _create_wave(stack, headers, recipients, wave)
            stack.start_worker()
            new_payment, seen = await _next_payment(memory, after=seen)
            stack.kill(stack.worker)
            kills += new_payment
    finally:
        await watcher.aclose()
    return kills


async def _next_payment(memory: RedisRailMemory, *, after: str) -> tuple[bool, str]:
    """Wait for a receipt of a new payment; whether one came, and the last receipt read."""
    deadline = time.monotonic() + new_payment_wait_seconds
    while time.monotonic() < deadline:
        for receipt in await memory.receipts(after=after, block_ms=500):
            after = receipt.stream_id
            if receipt.verdict == "received":
                return True, after
    return False, after


def _wait_until_settled(stack: Stack) -> None:
    """Until every transfer is final and the batch completed (or the guard runs out)."""

    async def open_count() -> int:
        connection = await asyncpg.connect(stack.database_url)
        try:
            transfers = await connection.fetchval(
                "SELECT count(*) FROM transfers WHERE status <> ALL($1::text[])",
                list(final_statuses),
            )
            batches = await connection.fetchval(
                "SELECT count(*) FROM batches WHERE status <> 'completed'"
            )
            return int(transfers) + int(batches)
        finally:
            await connection.close()

    deadline = time.monotonic() + settle_seconds_max
    while asyncio.run(open_count()):
        assert time.monotonic() < deadline, "transfers never reached a final state"
        time.sleep(0.5)


def _payment_ids(pacs008: str) -> tuple[uuid.UUID, str]:
    """The UETR and end-to-end id a pacs.008 names."""
    ns = {"p": pacs008_namespace}
    payment = ET.fromstring(pacs008).find("p:FIToFICstmrCdtTrf/p:CdtTrfTxInf/p:PmtId", ns)
    assert payment is not None
    return (
        uuid.UUID(payment.findtext("p:UETR", default="", namespaces=ns)),
        payment.findtext("p:EndToEndId", default="", namespaces=ns),
    )


async def _check(stack: Stack, redis_url: str, tenant_id: int, *, kills: int) -> None:
    connection = await asyncpg.connect(stack.database_url)
    client = Redis.from_url(redis_url)
    try:
        transfers = await connection.fetch("SELECT * FROM transfers ORDER BY created_at")
        sent = await connection.fetch(
            "SELECT transfer_id, xml FROM transfer_messages WHERE message_type = 'pacs.008'"
        )
        memory = RedisRailMemory(client)
        logged = await memory.receipts()
        await _check_payments(memory, transfers, sent, logged)
        await _check_wallet(stack, tenant_id, transfers)
        duplicates = sum(receipt.verdict == "duplicate" for receipt in logged)
        print(  # What the run exercised.
            f"rail duplicates: {len(transfers)} transfers, {kills} kills, "
            f"{Counter(receipt.verdict for receipt in logged)}"
        )
        assert kills == waves, "a wave's payments never reached a rail while the worker ran"
        assert duplicates > 0, "no payment was ever sent again: the re-send path never ran"
    finally:
        await client.aclose()
        await connection.close()


async def _check_payments(
    memory: RedisRailMemory,
    transfers: list[asyncpg.Record],
    sent: list[asyncpg.Record],
    logged: list[LoggedReceipt],
) -> None:
    """Each transfer is one payment, received once by its rail, whose answer it followed."""
    assert len(transfers) == waves * transfers_per_wave + batch_items
    assert sum(row["batch_id"] is not None for row in transfers) == batch_items
    identities: dict[uuid.UUID, set[tuple[uuid.UUID, str]]] = {}
    for message in sent:
        identities.setdefault(message["transfer_id"], set()).add(_payment_ids(message["xml"]))
    received = Counter(receipt.uetr for receipt in logged if receipt.verdict == "received")
    conflicts = [receipt for receipt in logged if receipt.verdict == "conflict"]
    assert conflicts == [], "a payment was sent again under another UETR or end-to-end id"
    assert sum(received.values()) == len(transfers), (
        "the rails made other than one payment per transfer"
    )
    for row in transfers:
        assert len(identities[row["id"]]) == 1, ("attempts named other payments", row["reference"])
        ((uetr, end_to_end_id),) = identities[row["id"]]
        assert received[uetr] == 1, (row["reference"], row["attempt"], received[uetr])
        payment = await memory.payment(rail=Rail(row["rail"]), uetr=uetr)
        assert payment is not None
        assert payment.end_to_end_id == end_to_end_id
        duplicates = [r for r in logged if r.uetr == uetr and r.verdict == "duplicate"]
        assert payment.duplicates == len(duplicates)
        expected = "refunded" if payment.answer.outcome == "rejected" else "completed"
        assert row["status"] == expected, (row["reference"], row["status"], payment.answer)
        if not row["reference"].startswith("sandbox:reject:"):
            assert row["status"] == "completed", (row["reference"], row["status"])


async def _check_wallet(stack: Stack, tenant_id: int, transfers: list[asyncpg.Record]) -> None:
    """The deposit less the completed payouts and their fees, to the minor unit."""
    spent = sum(
        row["source_amount_minor"] + row["fee_minor"]
        for row in transfers
        if row["status"] == "completed"
    )
    client = RemoteLedgerClient(stack.environment["KOVRA_LEDGER_ADDRESS"])
    try:
        (wallet,) = await client.lookup_accounts(
            [tenant_account_id(tenant_id, AccountType.TENANT_WALLET, eur)]
        )
    finally:
        await client.close()
    assert wallet.debits_pending == 0
    assert wallet.credits_posted - wallet.debits_posted == deposit_minor - spent
