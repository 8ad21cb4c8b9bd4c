"""Crash safety: while transfers are created and driven, the worker, the gateway and the
ledger server are killed with SIGKILL, and Postgres and Redis are killed and restarted under
the running gateway and worker, many times, in an order drawn from a printed seed
(`KOVRA_CRASH_SEED` replays it). Every answer is kept, and at the end:

- every transfer answered 201 is in Postgres and in the ledger, with the amounts it was
  answered and quoted, and reached the final state its reference leads to;
- no transfer exists that nobody asked for: a request refused with a 4xx left nothing, and
  besides the transfers answered 201 only requests that got no answer (or a 5xx) may have
  left one (found by the id its Idempotency-Key derives, or counted when it had none);
- every final state matches the ledger's own view of the payout, and every event was
  written once (an attempt's events once per attempt); a transfer killed between its
  reservation and its row is the reconciler's `abandoned` row, its reservation voided and
  no event written;
- the wallet conserves money to the minor unit, on the ledger's own balances: deposits =
  available + pending + what completed transfers spent (amounts and fees), and the platform's
  fee revenue and FX positions moved by exactly what the completed transfers say;
- the gateway and the worker live through every Postgres and Redis restart (they are not
  restarted then, so a death would show), answer again once the service is back, and a worker
  started while Postgres or Redis is down waits for it instead of exiting.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from gateway.http.ids import decode_id, object_id_for
from ledger.accounts import AccountType, platform_account_id, tenant_account_id
from ledger.clients import RemoteLedgerClient
from ledger.currencies import CurrencyRegistry
from ledger.payouts import Payout, Payouts, PayoutState
from ledger.service import Ledger
from tests.gateway.e2e.crash_tenant import Tenant, open_tenant
from tests.gateway.e2e.seeds import Seeded, seeded_run
from tests.gateway.e2e.stack import Stack

disruptions = ("gateway", "ledger", "postgres", "redis")
rounds_per_disruption = 3
# Which round of a service's outages also starts a worker while the service is down.
worker_start_during_outage_round = 1
transfers_per_round = 6
burst_pause_seconds_max = 0.3
deposit_minor = 50_000_000
liquidity_minor = {"IDR": 10**16, "EUR": 10**12}
references = ["INV-plain", "sandbox:reject:AC04", "sandbox:timeout:1", "INV-two"]
outage_seconds_min = 0.2
outage_seconds_max = 1.5
# Longer than a transfer's row can take to be written after its reservation (5 s for a
# connection, 10 s for the statement), as production requires of the reconciler's delay:
# with less, a request slowed by an outage could find its id already tombstoned.
reconcile_after_seconds = 20
settle_seconds_max = 120
ready_seconds_max = 60
startup_wait_seen_seconds_max = 60
worker_running_seconds_max = 60
# Written once per attempt at the rail, not once per transfer.
per_attempt_events = frozenset({"transfer.submitted", "transfer.pending_rail"})
final_statuses = frozenset({"completed", "refunded", "cancelled", "abandoned"})
ledger_states = {
    "completed": PayoutState.SETTLED,
    "refunded": PayoutState.ABORTED,
    "cancelled": PayoutState.ABORTED,
    # The reconciler's tombstone: the gateway died between the reservation and the row,
    # and the reservation was voided.
    "abandoned": PayoutState.ABORTED,
}


transfer_lease_seconds = 5


def test_crashes_and_service_restarts_lose_and_double_nothing(tmp_path: Path) -> None:
    run = seeded_run("crash safety")
    stack = Stack(
        tmp_path,
        own_services=True,
        environment={
            "KOVRA_RECONCILE_AFTER_SECONDS": str(reconcile_after_seconds),
            "KOVRA_PENDING_RAIL_BASE_MS": "20",
            "KOVRA_SANDBOX_LATENCY_MS_MAX": "40",
            # A killed worker's transfers go to the next one within seconds, not a minute.
            "KOVRA_TRANSFER_LEASE_SECONDS": str(transfer_lease_seconds),
        },
    )
    try:
        stack.start()
        tenant = open_tenant(stack, liquidity_minor=liquidity_minor, deposit_minor=deposit_minor)
        rounds = [d for d in disruptions for _ in range(rounds_per_disruption)]
        run.random("schedule").shuffle(rounds)
        seen: Counter[str] = Counter()
        for round_index, disruption in enumerate(rounds):
            _round(stack, run, tenant, round_index=round_index, disruption=disruption, seen=seen)
            seen[disruption] += 1
        _wait_until_settled(stack.database_url, run)
        asyncio.run(_wait_for_reconciler(stack, tenant.tenant_id, run))
        asyncio.run(_check(stack, tenant, run))
        print(f"crash safety {run.tag}: answers {tenant.journal.summary()}")
    finally:
        stack.close()


def _round(
    stack: Stack,
    run: Seeded,
    tenant: Tenant,
    *,
    round_index: int,
    disruption: str,
    seen: Counter[str],
) -> None:
    """A burst of transfers, and one disruption while it is in flight."""
    choices = run.random("round", round_index)
    if disruption in ("postgres", "redis"):
        # The outage must meet a worker running its loops, not one still starting (whose
        # start-up wait is its own round: `worker_start_during_outage_round`).
        asyncio.run(_wait_until_worker_runs(stack, run))
    burst = threading.Thread(
        target=_create_transfers, args=(tenant, run, round_index, transfers_per_round)
    )
    burst.start()
    time.sleep(choices.uniform(0.05, 0.4))
    worker_killed = disruption in ("gateway", "ledger")
    if worker_killed:
        stack.kill(stack.worker)
    if disruption == "gateway":
        stack.kill(stack.gateway)  # Mid-request: reservations without rows.
    elif disruption == "ledger":
        stack.kill(stack.ledger)  # The journal must bring every write back.
        stack.start_ledger()
    else:
        worker_starts = seen[disruption] == worker_start_during_outage_round
        _outage(stack, run, disruption, worker_starts=worker_starts, choices=choices)
    burst.join(timeout=180)
    assert not burst.is_alive(), f"{run.tag} the requests of round {round_index} never ended"
    if disruption in ("postgres", "redis"):
        _check_survived(stack, run, disruption)
        _check_work_resumes(tenant, run, round_index=round_index, service=disruption)
    # Only what this round killed is restarted: a process that died of anything else fails.
    for name, process, killed in (
        ("gateway", stack.gateway, disruption == "gateway"),
        ("worker", stack.worker, worker_killed),
    ):
        assert process is not None
        assert killed or process.poll() is None, (
            f"{run.tag} the {name} died ({process.returncode}) in round {round_index} "
            f"({disruption}), and nothing killed it; see {stack.log_path}"
        )
    if disruption == "gateway":
        stack.start_gateway()
    if worker_killed:
        stack.start_worker()


def _outage(
    stack: Stack, run: Seeded, service: str, *, worker_starts: bool, choices: random.Random
) -> None:
    """Kill Postgres or Redis with SIGKILL and start it again on the same data after a
    while; meanwhile, if `worker_starts`, a worker is started and must wait for it."""
    kill, start = (
        (stack.kill_postgres, stack.start_postgres)
        if service == "postgres"
        else (stack.kill_redis, stack.start_redis)
    )
    kill()
    if worker_starts:
        stack.kill(stack.worker)
        waiting_before = _log_count(stack, f"{service}_not_answering_at_startup")
        stack.start_worker()
        _wait_until_worker_waits(stack, run, service, waiting_before)
    time.sleep(choices.uniform(outage_seconds_min, outage_seconds_max))
    start()


async def _wait_until_worker_runs(stack: Stack, run: Seeded) -> None:
    """Until a worker runs its loops: its webhook delivery loop marks itself seen in
    `webhook_workers` at every claim, a few times a second."""
    connection = await asyncpg.connect(stack.database_url)
    deadline = time.monotonic() + worker_running_seconds_max
    try:
        since = await connection.fetchval("SELECT now()")
        while not await connection.fetchval(
            "SELECT count(*) FROM webhook_workers WHERE seen_at > $1", since
        ):
            assert time.monotonic() < deadline, f"{run.tag} the worker never ran its loops"
            await asyncio.sleep(0.1)
    finally:
        await connection.close()


def _log_count(stack: Stack, event: str) -> int:
    stack.log.flush()
    return stack.log_path.read_bytes().count(f'"event":"{event}"'.encode())


def _wait_until_worker_waits(stack: Stack, run: Seeded, service: str, before: int) -> None:
    """Until the worker started during the outage says it waits for `service`; it must not
    exit meanwhile (which is what it did before start-up waited for Postgres and Redis)."""
    deadline = time.monotonic() + startup_wait_seen_seconds_max
    event = f"{service}_not_answering_at_startup"
    while _log_count(stack, event) <= before:
        assert stack.worker is not None
        assert stack.worker.poll() is None, (
            f"{run.tag} a worker started while {service} was down exited "
            f"({stack.worker.returncode}) instead of waiting for it; see {stack.log_path}"
        )
        assert time.monotonic() < deadline, f"{run.tag} the worker never waited for {service}"
        time.sleep(0.1)


def _check_survived(stack: Stack, run: Seeded, service: str) -> None:
    """The gateway and the worker outlived the restart of `service`, and the gateway is
    ready again (every dependency answers it)."""
    for name, process in (("gateway", stack.gateway), ("worker", stack.worker)):
        assert process is not None
        assert process.poll() is None, (
            f"{run.tag} the {name} died ({process.returncode}) when {service} restarted; "
            f"see {stack.log_path}"
        )
    deadline = time.monotonic() + ready_seconds_max
    while True:
        try:
            if httpx.get(f"{stack.base}/ready", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{run.tag} not ready again after {service} restarted"
        time.sleep(0.2)


def _check_work_resumes(tenant: Tenant, run: Seeded, *, round_index: int, service: str) -> None:
    """Once the gateway is ready again, a payment goes through at the first try."""
    quote = tenant.journal.post(
        "/v1/quotes",
        {"source_currency": "EUR", "target_currency": "EUR", "source_amount": 1_000},
    )
    assert quote.created, f"{run.tag} no quote after {service} restarted: {quote}"
    transfer = tenant.journal.post(
        "/v1/transfers",
        {
            "quote_id": quote.reply["id"],
            "recipient_id": tenant.recipients["EUR"],
            "reference": f"INV-after-{service}",
        },
        idempotency_key=f"crash-{run.seed}-{round_index}-after",
    )
    assert transfer.created, f"{run.tag} no transfer after {service} restarted: {transfer}"


def _create_transfers(tenant: Tenant, run: Seeded, round_index: int, count: int) -> None:
    """Quote and pay, every answer journaled; a dead gateway simply leaves some unanswered.
    Every other transfer carries an Idempotency-Key, so its id is known even unanswered."""
    choices = run.random("burst", round_index)
    journal = tenant.journal
    for index in range(count):
        # Spread over the disruption: some before it, some during, some after.
        time.sleep(choices.uniform(0, burst_pause_seconds_max))
        target = choices.choice(["IDR", "EUR"])
        quote = journal.post(
            "/v1/quotes",
            {
                "source_currency": "EUR",
                "target_currency": target,
                "source_amount": 1_000 + choices.randrange(10_000),
            },
        )
        if not quote.created:
            continue
        body = {
            "quote_id": quote.reply["id"],
            "recipient_id": tenant.recipients[target],
            "reference": choices.choice(references),
        }
        key = f"crash-{run.seed}-{round_index}-{index}"
        journal.post("/v1/transfers", body, idempotency_key=key if index % 2 else None)
        if index == 0:
            # The quote paid again, under a key of its own: refused once the first payment
            # took it (409 quote_already_used), and a refusal must leave nothing behind.
            journal.post("/v1/transfers", body, idempotency_key=f"{key}-again")


def _wait_until_settled(url: str, run: Seeded) -> None:
    async def open_count() -> int:
        connection = await asyncpg.connect(url)
        try:
            return int(
                await connection.fetchval(
                    "SELECT count(*) FROM transfers WHERE NOT (status = ANY($1::text[]))",
                    sorted(final_statuses),
                )
            )
        finally:
            await connection.close()

    deadline = time.monotonic() + settle_seconds_max
    while asyncio.run(open_count()):
        assert time.monotonic() < deadline, f"{run.tag} transfers never reached a final state"
        time.sleep(0.5)


async def _wait_for_reconciler(stack: Stack, tenant_id: int, run: Seeded) -> None:
    """Until no reservation is left pending without a transfer row: the reconciler voids
    them once older than its delay."""
    deadline = time.monotonic() + reconcile_after_seconds + 60
    client = RemoteLedgerClient(stack.environment["KOVRA_LEDGER_ADDRESS"])
    try:
        while time.monotonic() < deadline:
            (wallet,) = await client.lookup_accounts([_wallet_id(tenant_id)])
            if wallet.debits_pending == 0:
                return
            await asyncio.sleep(0.5)
    finally:
        await client.close()
    raise AssertionError(f"{run.tag} reservations stayed pending")


def _wallet_id(tenant_id: int) -> int:
    return tenant_account_id(tenant_id, AccountType.TENANT_WALLET, 978)


async def _check(stack: Stack, tenant: Tenant, run: Seeded) -> None:
    connection = await asyncpg.connect(stack.database_url)
    client = RemoteLedgerClient(stack.environment["KOVRA_LEDGER_ADDRESS"])
    try:
        rows = {row["id"].int: row for row in await connection.fetch("SELECT * FROM transfers")}
        events = Counter(
            (row["object_id"].int, row["type"])
            for row in await connection.fetch(
                "SELECT object_id, type FROM events WHERE type LIKE 'transfer.%'"
            )
        )
        assert len(rows) >= len(disruptions) * rounds_per_disruption, (
            f"{run.tag} the bursts created too few transfers to prove much: {len(rows)}"
        )
        _check_answers(tenant, rows, run)
        await _check_states(Payouts(Ledger(client, CurrencyRegistry(["EUR", "IDR"]))), rows, run)
        _check_events(rows, events, run)
        await _check_money(client, tenant, rows, run)
        print(
            f"crash safety {run.tag}: {len(rows)} transfers, "  # What the run exercised.
            f"{dict(Counter(row['status'] for row in rows.values()))}"
        )
    finally:
        await client.close()
        await connection.close()


def _check_answers(tenant: Tenant, rows: dict[int, asyncpg.Record], run: Seeded) -> None:
    """Each answer against the rows: a 201 has its row, as answered; a 4xx left none; what
    is left unexplained came from requests whose outcome the client never learned."""
    quotes = {
        answer.reply["id"]: answer.reply
        for answer in tenant.journal.of("/v1/quotes")
        if answer.created
    }
    explained: set[int] = set()
    unknown_without_key = 0
    for answer in tenant.journal.of("/v1/transfers"):
        key = answer.idempotency_key
        derived = (
            None
            if key is None
            else object_id_for(tenant_id=tenant.tenant_id, kind="transfer", idempotency_key=key)
        )
        if answer.created:
            transfer_id = decode_id("tr", answer.reply["id"])
            assert derived in (None, transfer_id), f"{run.tag} {key} answered another id"
            _check_created(rows.get(transfer_id), answer.reply, quotes, run)
            explained.add(transfer_id)
        elif answer.refused:
            assert derived is None or derived not in rows, (
                f"{run.tag} a transfer refused with {answer.status} was recorded: {answer.reply}"
            )
        elif derived is not None:
            explained.add(derived)  # Unknown outcome: recorded or not, both are right.
        else:
            unknown_without_key += 1
    unexplained = [rows[i]["status"] for i in rows.keys() - explained]
    assert len(unexplained) <= unknown_without_key, (
        f"{run.tag} {len(unexplained)} transfers nobody was answered {unexplained}, but only "
        f"{unknown_without_key} requests without a key went unanswered"
    )


def _check_created(
    row: asyncpg.Record | None, reply: dict[str, Any], quotes: dict[str, Any], run: Seeded
) -> None:
    """A transfer answered 201: recorded as answered, from the quote answered, and final."""
    assert row is not None, f"{run.tag} transfer {reply['id']} was answered 201 and is lost"
    quote = quotes.get(reply["quote_id"])
    assert quote is not None, f"{run.tag} {reply['id']} pays a quote nobody was given"
    answered = (reply["source"]["amount"], reply["fee"]["amount"], reply["target"]["amount"])
    quoted = (quote["source_amount"], quote["fee"]["amount"], quote["target_amount"])
    recorded = (row["source_amount_minor"], row["fee_minor"], row["target_amount_minor"])
    assert answered == quoted == recorded, (
        f"{run.tag} {reply['id']}: answered {answered}, quoted {quoted}, recorded {recorded}"
    )
    assert row["status"] != "abandoned", (
        f"{run.tag} transfer {reply['id']} was answered 201 and then abandoned"
    )


def _expected_status(reference: str) -> str:
    return "refunded" if reference.startswith("sandbox:reject") else "completed"


async def _check_states(payouts: Payouts, rows: dict[int, asyncpg.Record], run: Seeded) -> None:
    """Each row's final state is the one its reference leads to, and the ledger's."""
    for row in rows.values():
        if row["status"] != "abandoned":
            assert row["status"] == _expected_status(row["reference"]), (
                f"{run.tag} {row['id']} ({row['reference']}) ended {row['status']}"
            )
        state = await payouts.state(_payout(row))
        assert state is ledger_states[row["status"]], (
            f"{run.tag} {row['id']} is {row['status']} but the ledger has it {state}"
        )


def _payout(row: asyncpg.Record) -> Payout:
    return Payout(
        payout_id=row["id"].int,
        tenant_id=row["tenant_id"],
        source_currency=row["source_currency"],
        source_amount_minor=row["source_amount_minor"],
        fee_minor=row["fee_minor"],
        target_currency=row["target_currency"],
        target_amount_minor=row["target_amount_minor"],
    )


def _check_events(
    rows: dict[int, asyncpg.Record], events: Counter[tuple[int, str]], run: Seeded
) -> None:
    """Each event once: an attempt's events at most once per attempt, every other event at
    most once, each final state's event exactly once, and nothing for a tombstone."""
    for (transfer_id, kind), count in events.items():
        row = rows.get(transfer_id)
        assert row is not None, f"{run.tag} {kind} for a transfer nobody has: {transfer_id}"
        written_max = row["attempt"] if kind in per_attempt_events else 1
        assert count <= written_max, (
            f"{run.tag} {row['id']} has {kind} {count} times in {row['attempt']} attempts"
        )
    for transfer_id, row in rows.items():
        if row["status"] == "abandoned":
            written = [key for key in events if key[0] == transfer_id]
            assert not written, f"{run.tag} the tombstone {row['id']} has events {written}"
        else:
            final = (transfer_id, f"transfer.{row['status']}")
            assert events[final] == 1, f"{run.tag} {row['id']} has no {final[1]} event"


async def _check_money(
    client: RemoteLedgerClient, tenant: Tenant, rows: dict[int, asyncpg.Record], run: Seeded
) -> None:
    """Deposits = available + pending + completed spend, to the minor unit, on the ledger's
    own balances; the fees and the FX legs went where the completed transfers say."""
    completed = [row for row in rows.values() if row["status"] == "completed"]
    deposited = sum(a.sent["amount"] for a in tenant.journal.of("/v1/deposits") if a.created)
    spent = sum(row["source_amount_minor"] + row["fee_minor"] for row in completed)
    ids = [
        _wallet_id(tenant.tenant_id),
        platform_account_id(AccountType.FEE_REVENUE, 978),
        platform_account_id(AccountType.FX_POSITION, 978),
        platform_account_id(AccountType.FX_POSITION, 360),
    ]
    wallet, fees, euros, rupiahs = await client.lookup_accounts(ids)
    pending = wallet.debits_pending
    available = wallet.credits_posted - wallet.debits_posted - pending
    assert (pending, deposited) == (0, available + pending + spent), (
        f"{run.tag} deposited {deposited}, available {available}, pending {pending}, "
        f"completed transfers spent {spent}"
    )
    crossed = [row for row in completed if row["target_currency"] == "IDR"]
    moved = {
        "fee revenue (EUR)": (
            fees.credits_posted - fees.debits_posted,
            sum(row["fee_minor"] for row in completed),
        ),
        "FX position (EUR)": (
            euros.credits_posted - euros.debits_posted - liquidity_minor["EUR"],
            sum(row["source_amount_minor"] for row in crossed),
        ),
        "FX position (IDR)": (
            rupiahs.credits_posted - rupiahs.debits_posted - liquidity_minor["IDR"],
            -sum(row["target_amount_minor"] for row in crossed),
        ),
    }
    for account, (ledger_minor, rows_minor) in moved.items():
        assert ledger_minor == rows_minor, (
            f"{run.tag} {account} moved {ledger_minor} in the ledger, {rows_minor} by the rows"
        )
