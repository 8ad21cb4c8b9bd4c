"""A batch acceptance killed for real: `POST /v1/batches` of thousands of items, the gateway's
whole process group SIGKILLed mid-acceptance, at delays drawn from a printed seed
(`KOVRA_CRASH_SEED` replays them) and once the moment the batch's conversion chain appears in
the ledger (between the ledger and Postgres, where only the repair can help). The gateway
restarts, the worker's batch repair runs, and then, and again after every killed request is
retried with its Idempotency-Key:

- each batch is either accepted whole (its row, a transfer row for every item, every item's
  holds in the ledger for exactly its row's amounts, its conversion chain exactly the sum of
  its items) or undone (no row but the repair's tombstone, no item row, every hold the
  ledger has for it voided, every leg of its conversion chain reversed);
- no money sits anywhere without its row: the tenant's clearing account holds, posted and
  pending, exactly what recorded items still hold, and the wallet holds nothing pending;
- the wallet conserves money to the minor unit: deposits = available + what recorded items
  hold + what committed items spent;
- a retry with the same key gives one batch: the recorded one again, `409 batch_abandoned`
  for an undone one, or the batch itself when the kill came before it moved any money; and
  once more, the same answer.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import tigerbeetle as tb

from gateway.batches.repair import watermark_name as repair_watermark
from gateway.batches.service import item_id
from gateway.http.ids import decode_id, object_id_for
from ledger.accounts import AccountType, tenant_account_id
from ledger.clients import RemoteLedgerClient, batch_size_max
from ledger.netting import clearing_sub_account, netting_id
from ledger.transfers import Leg, TransferCode, transfer_id, transfers_query
from tests.gateway.e2e.answers import Answer
from tests.gateway.e2e.conftest import stop
from tests.gateway.e2e.crash_tenant import Tenant, open_tenant
from tests.gateway.e2e.seeds import Seeded, seeded_run
from tests.gateway.e2e.stack import Stack

items_per_batch = 3_000
random_kills = 3
deposit_minor = 10**10
liquidity_minor = {"IDR": 10**16, "EUR": 10**12}
pairs = (("EUR", "IDR"), ("EUR", "EUR"))
# The repair undoes chains older than this; an acceptance takes about a second here.
reconcile_after_seconds = 5
# A killed request's key is free for its retry after this (`KOVRA_IDEMPOTENCY_LEASE_SECONDS`).
idempotency_lease_seconds = 5
batch_timeout_seconds = 120
repair_seconds_max = 90
retry_seconds_max = 60
chain_poll_seconds = 0.002
chain_poll_seconds_max = 60
pair_codes = frozenset(
    {TransferCode.BATCH_SOURCE, TransferCode.BATCH_FEE, TransferCode.BATCH_TARGET}
)
euro = 978


@dataclass(frozen=True, kw_only=True)
class Sent:
    """A batch request: its key, its body and the batch id the key derives."""

    key: str
    body: dict[str, Any]
    batch_id: int


def test_a_batch_killed_mid_acceptance_is_accepted_whole_or_undone(tmp_path: Path) -> None:
    run = seeded_run("batch crash safety")
    stack = Stack(
        tmp_path,
        own_services=True,
        environment={
            "KOVRA_RECONCILE_AFTER_SECONDS": str(reconcile_after_seconds),
            "KOVRA_IDEMPOTENCY_LEASE_SECONDS": str(idempotency_lease_seconds),
        },
    )
    try:
        stack.start()
        tenant = open_tenant(stack, liquidity_minor=liquidity_minor, deposit_minor=deposit_minor)
        control = _batch(tenant, run, "control")
        began = time.monotonic()
        answer = _send(tenant, control)
        acceptance_seconds = time.monotonic() - began
        assert answer.created, f"{run.tag} the batch nobody killed: {answer.status} {answer.reply}"
        killed = [_batch(tenant, run, f"killed-{index}") for index in range(random_kills + 1)]
        choices = run.random("kills")
        for sent in killed[:random_kills]:
            _kill_after(stack, tenant, sent, choices.uniform(0, 1.2 * acceptance_seconds))
        _kill_when_converted(stack, tenant, killed[-1], run)
        batches = [control, *killed]
        asyncio.run(_wait_for_repair(stack, batches, run))
        assert stack.worker is not None
        stop(stack.worker)  # The ledger stays still while it is compared with the rows.
        outcomes = asyncio.run(_check(stack, tenant, batches, run))
        print(f"batch crash safety {run.tag}: after the kills {outcomes}")
        assert "undone" in outcomes.values(), (
            f"{run.tag} no kill landed between the ledger and Postgres: the repair was not "
            f"exercised ({outcomes})"
        )
        for sent in killed:
            _retry_twice(tenant, sent, outcomes[sent.key], run)
        outcomes = asyncio.run(_check(stack, tenant, batches, run))
        print(f"batch crash safety {run.tag}: after the retries {outcomes}")
    finally:
        stack.close()


def _batch(tenant: Tenant, run: Seeded, name: str) -> Sent:
    """A batch of `items_per_batch` payouts over both pairs, amounts drawn from the seed."""
    choices = run.random("batch", name)
    items = []
    for index in range(items_per_batch):
        source, target = pairs[index % len(pairs)]
        items.append(
            {
                "recipient_id": tenant.recipients[target],
                "source_currency": source,
                "target_currency": target,
                "source_amount": 1_000 + choices.randrange(9_000),
                "reference": f"{name} item {index}",
            }
        )
    key = f"batch-{run.seed}-{name}"
    batch_id = object_id_for(tenant_id=tenant.tenant_id, kind="batch", idempotency_key=key)
    return Sent(key=key, body={"items": items}, batch_id=batch_id)


def _send(tenant: Tenant, sent: Sent) -> Answer:
    return tenant.journal.post(
        "/v1/batches", sent.body, idempotency_key=sent.key, timeout_seconds=batch_timeout_seconds
    )


def _kill_after(stack: Stack, tenant: Tenant, sent: Sent, delay_seconds: float) -> None:
    """Send the batch, SIGKILL the gateway's process group `delay_seconds` later, restart."""
    request = threading.Thread(target=_send, args=(tenant, sent))
    request.start()
    time.sleep(delay_seconds)
    stack.kill(stack.gateway)
    request.join(timeout=batch_timeout_seconds)
    stack.start_gateway()


def _kill_when_converted(stack: Stack, tenant: Tenant, sent: Sent, run: Seeded) -> None:
    """Send the batch and SIGKILL the gateway the moment its conversion chain is in the
    ledger: after the ledger, before Postgres."""
    request = threading.Thread(target=_send, args=(tenant, sent))
    request.start()
    leg = _pair_leg_id(sent.batch_id, pairs[0], Leg.BATCH_SOURCE)
    asyncio.run(_wait_for_transfer(stack, leg, run))
    stack.kill(stack.gateway)
    request.join(timeout=batch_timeout_seconds)
    stack.start_gateway()


def _pair_leg_id(batch_id: int, pair: tuple[str, str], leg: Leg) -> int:
    chain = netting_id(batch_id=batch_id, source_currency=pair[0], target_currency=pair[1])
    return transfer_id(object_id=chain, leg=leg)


async def _wait_for_transfer(stack: Stack, wanted: int, run: Seeded) -> None:
    client = RemoteLedgerClient(stack.environment["KOVRA_LEDGER_ADDRESS"])
    deadline = time.monotonic() + chain_poll_seconds_max
    try:
        while not await client.lookup_transfers([wanted]):
            assert time.monotonic() < deadline, f"{run.tag} the batch never reached the ledger"
            await asyncio.sleep(chain_poll_seconds)
    finally:
        await client.close()


async def _wait_for_repair(stack: Stack, batches: list[Sent], run: Seeded) -> None:
    """Until the repair has been through every batch's conversion chain: its scan's
    watermark is past them all (it moves only once every batch of a scan is settled)."""
    client = RemoteLedgerClient(stack.environment["KOVRA_LEDGER_ADDRESS"])
    connection = await asyncpg.connect(stack.database_url)
    deadline = time.monotonic() + repair_seconds_max
    try:
        legs = await client.lookup_transfers(
            [_pair_leg_id(sent.batch_id, pairs[0], Leg.BATCH_SOURCE) for sent in batches]
        )
        last_ns = max(leg.timestamp for leg in legs)
        while True:
            watermark_ns = await connection.fetchval(
                "SELECT ledger_timestamp_ns FROM reconciler_watermarks WHERE name = $1",
                repair_watermark,
            )
            if watermark_ns is not None and watermark_ns >= last_ns:
                return
            assert time.monotonic() < deadline, f"{run.tag} the repair never came"
            await asyncio.sleep(0.5)
    finally:
        await connection.close()
        await client.close()


def _retry_twice(tenant: Tenant, sent: Sent, outcome: str, run: Seeded) -> None:
    """The same request, same key: one batch. Sent twice, the second answer is the first."""
    first = _retry(tenant, sent, run)
    if outcome == "undone":
        assert first.status == 409, f"{run.tag} {sent.key} undone, retried: {first.reply}"
        assert first.reply["code"] == "batch_abandoned", f"{run.tag} {first.reply}"
    else:
        assert first.created, f"{run.tag} {sent.key} ({outcome}), retried: {first.reply}"
        assert decode_id("batch", first.reply["id"]) == sent.batch_id, f"{run.tag} {first.reply}"
        assert first.reply["accepted_count"] == items_per_batch, f"{run.tag} {first.reply}"
    second = _retry(tenant, sent, run)
    assert (second.status, second.reply) == (first.status, first.reply), (
        f"{run.tag} {sent.key} answered {first.status} then {second.status}"
    )


def _retry(tenant: Tenant, sent: Sent, run: Seeded) -> Answer:
    """Send again until the killed attempt's hold on the key lapses (409 in progress)."""
    deadline = time.monotonic() + retry_seconds_max
    while True:
        answer = _send(tenant, sent)
        if not (answer.status == 409 and answer.reply["code"] == "idempotency_in_progress"):
            return answer
        assert time.monotonic() < deadline, f"{run.tag} {sent.key} stayed in progress"
        time.sleep(0.5)


async def _check(stack: Stack, tenant: Tenant, batches: list[Sent], run: Seeded) -> dict[str, str]:
    """Every batch whole or undone, and the tenant's money where the rows say; each batch's
    outcome by key: `accepted` (recorded), `undone` (tombstoned by the repair) or `untouched`
    (killed before it moved any money)."""
    client = RemoteLedgerClient(stack.environment["KOVRA_LEDGER_ADDRESS"])
    connection = await asyncpg.connect(stack.database_url)
    try:
        outcomes = {}
        held = Counter[str]()
        for sent in batches:
            outcome, items = await _check_batch(connection, client, sent, run)
            outcomes[sent.key] = outcome
            held.update(items)
        await _check_money(client, tenant, held, run)
        return outcomes
    finally:
        await connection.close()
        await client.close()


async def _check_batch(
    connection: asyncpg.Connection, client: RemoteLedgerClient, sent: Sent, run: Seeded
) -> tuple[str, Counter[str]]:
    """The batch whole or undone; its outcome, and its items' money by ledger state
    (`reserved`, `committed`, `aborted`) in minor units of the source currency."""
    tag = f"{run.tag} {sent.key}"
    status = await connection.fetchval(
        "SELECT status FROM batches WHERE id = $1", uuid.UUID(int=sent.batch_id)
    )
    rows = {
        row["batch_item_index"]: row
        for row in await connection.fetch(
            "SELECT batch_item_index, source_currency, target_currency, source_amount_minor,"
            " fee_minor, target_amount_minor FROM transfers WHERE batch_id = $1",
            uuid.UUID(int=sent.batch_id),
        )
    }
    legs = await client.query_transfers(
        transfers_query(user_data_128=sent.batch_id, limit=batch_size_max)
    )
    states = await _item_states(client, sent.batch_id)
    if status is not None and status != "abandoned":
        assert sorted(rows) == list(range(items_per_batch)), f"{tag}: items without rows"
        _check_whole(rows, legs, states, batch_id=sent.batch_id, tag=tag)
        money = Counter[str]()
        for index, row in rows.items():
            money[states[index].state] += row["source_amount_minor"] + row["fee_minor"]
        return "accepted", money
    assert not rows, f"{tag}: {status or 'no'} batch row, yet {len(rows)} item rows"
    unvoided = {i: s.state for i, s in states.items() if s.state != "aborted"}
    assert not unvoided, f"{tag}: undone, yet items' holds stand {dict(Counter(unvoided.values()))}"
    _check_reversed(legs, tag)
    assert (status is None) == (not legs), f"{tag}: chain {len(legs)} legs, row {status}"
    return ("undone" if status else "untouched"), Counter()


@dataclass(frozen=True, kw_only=True)
class _ItemState:
    state: str  # reserved, committed or aborted
    held_minor: tuple[int, int]  # The source and fee holds' amounts.


async def _item_states(client: RemoteLedgerClient, batch_id: int) -> dict[int, _ItemState]:
    """What the ledger has of each item of the batch, found by the ids its index derives."""
    roles = {
        "source": Leg.PAYOUT_SOURCE,
        "fee": Leg.PAYOUT_FEE,
        "post": Leg.PAYOUT_SOURCE_POST,
        "void": Leg.PAYOUT_SOURCE_VOID,
    }
    ids: dict[int, tuple[int, str]] = {}
    for index in range(items_per_batch):
        item = item_id(batch_id=batch_id, index=index)
        for role, leg in roles.items():
            ids[transfer_id(object_id=item, leg=leg)] = (index, role)
    found: dict[int, dict[str, tb.Transfer]] = {}
    wanted = list(ids)
    for start in range(0, len(wanted), batch_size_max):
        for transfer in await client.lookup_transfers(wanted[start : start + batch_size_max]):
            index, role = ids[transfer.id]
            found.setdefault(index, {})[role] = transfer
    states = {}
    for index, legs in found.items():
        state = "committed" if "post" in legs else "aborted" if "void" in legs else "reserved"
        fee = legs["fee"].amount if "fee" in legs else 0
        states[index] = _ItemState(state=state, held_minor=(legs["source"].amount, fee))
    return states


def _check_whole(
    rows: dict[int, asyncpg.Record],
    legs: list[tb.Transfer],
    states: dict[int, _ItemState],
    *,
    batch_id: int,
    tag: str,
) -> None:
    """Every item held for exactly its row's amounts; each pair's chain exactly its items'
    totals; nothing reversed."""
    for index, row in rows.items():
        state = states.get(index)
        assert state is not None, f"{tag}: item {index} has a row and no holds"
        wanted = (row["source_amount_minor"], row["fee_minor"])
        assert state.held_minor == wanted, f"{tag}: item {index} holds {state.held_minor}"
    assert all(leg.code in pair_codes for leg in legs), f"{tag}: recorded, yet reversed"
    pair_of = _pairs_by_leg_id(batch_id)
    chain = Counter[tuple[str, int]]()
    for leg in legs:
        chain[(pair_of[leg.id], leg.code)] += leg.amount
    expected = Counter[tuple[str, int]]()
    for row in rows.values():
        pair = f"{row['source_currency']}/{row['target_currency']}"
        expected[(pair, TransferCode.BATCH_SOURCE)] += row["source_amount_minor"]
        expected[(pair, TransferCode.BATCH_FEE)] += row["fee_minor"]
        if row["source_currency"] != row["target_currency"]:
            expected[(pair, TransferCode.BATCH_TARGET)] += row["target_amount_minor"]
    assert chain == expected, f"{tag}: the chains {chain} are not the items' {expected}"


def _pairs_by_leg_id(batch_id: int) -> dict[int, str]:
    """Each possible chain leg of the batch, by id: its pair."""
    return {
        _pair_leg_id(batch_id, pair, leg): f"{pair[0]}/{pair[1]}"
        for pair in pairs
        for leg in (Leg.BATCH_SOURCE, Leg.BATCH_FEE, Leg.BATCH_TARGET)
    }


def _check_reversed(legs: list[tb.Transfer], tag: str) -> None:
    """Every leg of an undone batch's chain given back by its reversal."""
    given = Counter((leg.debit_account_id, leg.credit_account_id) for leg in legs)
    amounts: Counter[tuple[int, int]] = Counter()
    for leg in legs:
        if leg.code in pair_codes:
            amounts[(leg.debit_account_id, leg.credit_account_id)] += leg.amount
        else:
            assert leg.code == TransferCode.BATCH_REVERSAL, f"{tag}: leg code {leg.code}"
            amounts[(leg.credit_account_id, leg.debit_account_id)] -= leg.amount
    net = {accounts: amount for accounts, amount in amounts.items() if amount}
    assert not net, f"{tag}: undone, yet its chain still moves {net} ({given})"


async def _check_money(
    client: RemoteLedgerClient, tenant: Tenant, held: Counter[str], run: Seeded
) -> None:
    """The clearing account holds exactly what recorded items hold; deposits = available +
    that + what committed items spent, on the ledger's own balances."""
    wallet, clearing = await client.lookup_accounts(
        [
            tenant_account_id(tenant.tenant_id, AccountType.TENANT_WALLET, euro),
            tenant_account_id(
                tenant.tenant_id,
                AccountType.PENDING_OUTBOUND,
                euro,
                sub_account=clearing_sub_account,
            ),
        ]
    )
    in_clearing = clearing.credits_posted - clearing.debits_posted
    assert (clearing.debits_pending, in_clearing) == (held["reserved"], held["reserved"]), (
        f"{run.tag} the clearing account holds {in_clearing}, {clearing.debits_pending} of it "
        f"pending, but the recorded items hold {held['reserved']}"
    )
    available = wallet.credits_posted - wallet.debits_posted - wallet.debits_pending
    deposited = sum(a.sent["amount"] for a in tenant.journal.of("/v1/deposits") if a.created)
    assert (wallet.debits_pending, deposited) == (
        0,
        available + in_clearing + held["committed"],
    ), (
        f"{run.tag} deposited {deposited}: available {available}, pending "
        f"{wallet.debits_pending}, held by items {in_clearing}, spent {held['committed']}"
    )
