"""Crash safety: the worker, the gateway and the ledger server are killed with SIGKILL at
arbitrary moments while transfers are created and driven, many times, then restarted.
Every transfer ends in a correct final state, its money moved exactly once: the ledger's
own view of each payout matches its status, the wallet holds nothing back, its balance is
the deposit less exactly the completed payouts, and each final event was written once. A
transfer killed between its reservation and its row is left as the reconciler's `abandoned`
row, its reservation voided and no event written."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from pathlib import Path

import asyncpg
import httpx

from ledger.accounts import AccountType, tenant_account_id
from ledger.clients import RemoteLedgerClient
from ledger.currencies import CurrencyRegistry
from ledger.payouts import Payout, Payouts, PayoutState
from ledger.service import Ledger
from tests import redis_server
from tests.gateway.e2e.conftest import admin_token
from tests.gateway.e2e.stack import Stack

kill_rounds = 12
transfers_per_round = 6
deposit_minor = 50_000_000
references = ["INV-plain", "sandbox:reject:AC04", "sandbox:timeout:1", "INV-two"]
settle_seconds_max = 90


def _setup(stack: Stack) -> tuple[int, str, dict[str, str]]:
    admin = {"Authorization": f"Bearer {admin_token}"}
    for currency, amount in (("IDR", 10**16), ("EUR", 10**12)):
        httpx.post(
            f"{stack.base}/admin/v1/liquidity",
            headers=admin,
            json={"currency": currency, "amount": amount},
        ).raise_for_status()
    created = httpx.post(
        f"{stack.base}/admin/v1/tenants",
        headers=admin,
        json={"name": "crash", "tier": "enterprise"},
    )
    created.raise_for_status()
    key = created.json()["api_key"]
    headers = {"Authorization": f"Bearer {key}"}
    httpx.post(
        f"{stack.base}/v1/deposits",
        headers=headers,
        json={"currency": "EUR", "amount": deposit_minor},
    ).raise_for_status()
    recipients = {}
    for currency, body in (
        (
            "IDR",
            {
                "name": "PT A",
                "country": "ID",
                "currency": "IDR",
                "bank_details": {"bank_code": "014", "account_number": "1234567890"},
            },
        ),
        (
            "EUR",
            {
                "name": "B GmbH",
                "country": "DE",
                "currency": "EUR",
                "bank_details": {"iban": "DE89370400440532013000", "bic": "COBADEFFXXX"},
            },
        ),
    ):
        response = httpx.post(f"{stack.base}/v1/recipients", headers=headers, json=body)
        response.raise_for_status()
        recipients[currency] = response.json()["id"]
    return int(created.json()["tenant_id"]), key, recipients


def _create_transfers(stack: Stack, key: str, recipients: dict[str, str], count: int) -> None:
    """Fire transfers; a gateway killed mid-request simply loses some answers."""
    headers = {"Authorization": f"Bearer {key}"}
    for index in range(count):
        target = random.choice(["IDR", "EUR"])
        try:
            quote = httpx.post(
                f"{stack.base}/v1/quotes",
                headers=headers,
                timeout=10,
                json={
                    "source_currency": "EUR",
                    "target_currency": target,
                    "source_amount": 1_000 + index,
                },
            )
            if quote.status_code != 201:
                continue
            httpx.post(
                f"{stack.base}/v1/transfers",
                headers=headers,
                timeout=10,
                json={
                    "quote_id": quote.json()["id"],
                    "recipient_id": recipients[target],
                    "reference": random.choice(references),
                },
            )
        except httpx.HTTPError:
            continue


def test_killing_processes_at_any_time_loses_and_doubles_nothing(tmp_path: Path) -> None:
    stack = Stack(
        tmp_path,
        redis_url=redis_server.redis_url(13),
        environment={
            "KOVRA_RECONCILE_AFTER_SECONDS": "2",
            "KOVRA_PENDING_RAIL_BASE_MS": "20",
            "KOVRA_SANDBOX_LATENCY_MS_MAX": "40",
        },
    )
    try:
        stack.create_database()
        stack.start_ledger()
        stack.start_gateway()
        stack.start_worker()
        tenant_id, key, recipients = _setup(stack)
        for round_index in range(kill_rounds):
            burst = threading.Thread(
                target=_create_transfers, args=(stack, key, recipients, transfers_per_round)
            )
            burst.start()
            time.sleep(random.uniform(0.05, 0.4))
            stack.kill(stack.worker)
            if round_index % 4 == 1:
                stack.kill(stack.gateway)  # Mid-request: reservations without rows.
            if round_index % 6 == 3:
                stack.kill(stack.ledger)  # The journal must bring every write back.
                stack.start_ledger()
            burst.join(timeout=60)
            if stack.gateway is None or stack.gateway.poll() is not None:
                stack.start_gateway()
            stack.start_worker()
        _wait_until_settled(stack.database_url)
        time.sleep(3)  # Past KOVRA_RECONCILE_AFTER_SECONDS: orphan reservations are voided.
        asyncio.run(_wait_for_reconciler(stack, tenant_id))
        asyncio.run(_check(stack.database_url, stack, tenant_id))
    finally:
        stack.close()


def _wait_until_settled(url: str) -> None:
    async def open_count() -> int:
        connection = await asyncpg.connect(url)
        try:
            return int(
                await connection.fetchval(
                    "SELECT count(*) FROM transfers WHERE status NOT IN "
                    "('completed', 'refunded', 'cancelled', 'abandoned')"
                )
            )
        finally:
            await connection.close()

    deadline = time.monotonic() + settle_seconds_max
    while asyncio.run(open_count()):
        assert time.monotonic() < deadline, "transfers never reached a final state"
        time.sleep(0.5)


async def _wait_for_reconciler(stack: Stack, tenant_id: int) -> None:
    """Until no reservation is left pending without a transfer row (or time runs out)."""
    deadline = time.monotonic() + 30
    client = RemoteLedgerClient(stack.environment["KOVRA_LEDGER_ADDRESS"])
    try:
        while time.monotonic() < deadline:
            (wallet,) = await client.lookup_accounts([_wallet_id(tenant_id)])
            if wallet.debits_pending == 0:
                return
            await asyncio.sleep(0.5)
    finally:
        await client.close()
    raise AssertionError("reservations stayed pending")


def _wallet_id(tenant_id: int) -> int:
    return tenant_account_id(tenant_id, AccountType.TENANT_WALLET, 978)


async def _check(url: str, stack: Stack, tenant_id: int) -> None:
    connection = await asyncpg.connect(url)
    client = RemoteLedgerClient(stack.environment["KOVRA_LEDGER_ADDRESS"])
    try:
        rows = await connection.fetch("SELECT * FROM transfers")
        events = Counter(
            (row["object_id"], row["type"])
            for row in await connection.fetch("SELECT object_id, type FROM events")
        )
        assert len(rows) >= kill_rounds, "the bursts created too few transfers to prove much"
        payouts = Payouts(Ledger(client, CurrencyRegistry(["EUR", "IDR"])))
        spent = 0
        for row in rows:
            payout = Payout(
                payout_id=row["id"].int,
                tenant_id=row["tenant_id"],
                source_currency=row["source_currency"],
                source_amount_minor=row["source_amount_minor"],
                fee_minor=row["fee_minor"],
                target_currency=row["target_currency"],
                target_amount_minor=row["target_amount_minor"],
            )
            state = await payouts.state(payout)
            expected = {
                "completed": PayoutState.SETTLED,
                "refunded": PayoutState.ABORTED,
                "cancelled": PayoutState.ABORTED,
                # The reconciler's tombstone: the gateway died between the reservation and
                # the row, and the reservation was voided. It never had an event.
                "abandoned": PayoutState.ABORTED,
            }[row["status"]]
            assert state is expected, (row["status"], state, row["reference"])
            if row["status"] == "abandoned":
                assert not [key for key in events if key[0] == row["id"]]
                continue
            assert events[(row["id"], f"transfer.{row['status']}")] == 1
            if row["reference"].startswith("sandbox:reject"):
                assert row["status"] == "refunded"
            if row["status"] == "completed":
                spent += row["source_amount_minor"] + row["fee_minor"]
        (wallet,) = await client.lookup_accounts([_wallet_id(tenant_id)])
        print(
            f"crash safety: {len(rows)} transfers, "  # Shows what the run exercised.
            f"{dict(Counter(row['status'] for row in rows))}"
        )
        assert wallet.debits_pending == 0
        assert wallet.credits_posted - wallet.debits_posted == deposit_minor - spent
    finally:
        await client.close()
        await connection.close()
