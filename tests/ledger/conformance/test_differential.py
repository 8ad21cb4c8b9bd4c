"""Conformance by difference: random batches of accounts and transfers, valid and invalid,
give the embedded engine and a real TigerBeetle cluster identical statuses and identical
balances. Needs a cluster (`TB_ADDRESSES`); skipped with that reason otherwise."""

from __future__ import annotations

import asyncio
import os
import secrets

import hypothesis.strategies as st
import pytest
import tigerbeetle as tb
from hypothesis import HealthCheck, given, settings

from ledger.clients import EmbeddedClient, LedgerClient, TigerBeetleClient, TigerBeetleSettings
from tests.conftest import real_cluster_available, real_cluster_skip_reason

pytestmark = [
    pytest.mark.conformance,
    pytest.mark.skipif(not real_cluster_available(), reason=real_cluster_skip_reason),
]

AF = tb.AccountFlags
TF = tb.TransferFlags
account_count = 6
account_flag_choices = [
    AF.NONE,
    AF.HISTORY,
    AF.DEBITS_MUST_NOT_EXCEED_CREDITS,
    AF.CREDITS_MUST_NOT_EXCEED_DEBITS,
    AF.DEBITS_MUST_NOT_EXCEED_CREDITS | AF.HISTORY,
    AF.LINKED,
]
transfer_flag_choices = [
    TF.NONE,
    TF.NONE,
    TF.LINKED,
    TF.PENDING,
    TF.PENDING | TF.LINKED,
    TF.POST_PENDING_TRANSFER,
    TF.VOID_PENDING_TRANSFER,
    TF.POST_PENDING_TRANSFER | TF.LINKED,
    TF.BALANCING_DEBIT,
    TF.BALANCING_CREDIT,
    TF.PENDING | TF.CLOSING_CREDIT,
    TF.POST_PENDING_TRANSFER | TF.PENDING,
]

# A transfer is drawn as indices into the run's accounts and earlier transfers, so the same
# drawing replays with fresh ids on every example.
transfer_drawings = st.fixed_dictionaries(
    {
        "debit": st.integers(min_value=0, max_value=account_count),  # account_count = missing
        "credit": st.integers(min_value=0, max_value=account_count),
        "amount": st.sampled_from([0, 1, 5, 20, 100, (1 << 128) - 1]),
        "flags": st.sampled_from(transfer_flag_choices),
        "pending": st.integers(min_value=-1, max_value=30),  # -1: none, else an earlier transfer
        "reuse": st.booleans(),  # Resubmit an earlier transfer id (idempotency paths).
        "ledger": st.sampled_from([978, 978, 978, 840, 0]),
        "code": st.sampled_from([1, 1, 2, 0]),
        "timeout": st.sampled_from([0, 0, 3600]),
    }
)
scenario = st.fixed_dictionaries(
    {
        "account_flags": st.lists(
            st.sampled_from(account_flag_choices), min_size=account_count, max_size=account_count
        ),
        "account_ledgers": st.lists(
            st.sampled_from([978, 978, 840]), min_size=account_count, max_size=account_count
        ),
        "batches": st.lists(
            st.lists(transfer_drawings, min_size=1, max_size=8), min_size=1, max_size=6
        ),
    }
)


def _build(drawn: dict[str, object], base: int) -> tuple[list[tb.Account], list[list[tb.Transfer]]]:
    account_flags: list[AF] = drawn["account_flags"]  # type: ignore[assignment]
    ledgers: list[int] = drawn["account_ledgers"]  # type: ignore[assignment]
    accounts = [
        tb.Account(id=base + index + 1, ledger=ledgers[index], code=1, flags=flags)
        for index, flags in enumerate(account_flags)
    ]
    ids = [a.id for a in accounts] + [base + 10_000]  # The last one never exists.
    transfers: list[tb.Transfer] = []
    batches: list[list[tb.Transfer]] = []
    for batch in drawn["batches"]:  # type: ignore[attr-defined]
        built: list[tb.Transfer] = []
        for d in batch:
            pending = d["pending"]
            reuse = d["reuse"] and pending >= 0 and pending < len(transfers)
            transfer_id = transfers[pending].id if reuse else base + 1_000 + len(transfers)
            pending_id = transfers[pending].id if 0 <= pending < len(transfers) else 0
            if pending >= len(transfers) and pending >= 0:
                pending_id = base + 20_000 + pending  # A pending transfer that never existed.
            flags = d["flags"]
            resolving = bool(int(flags) & int(TF.POST_PENDING_TRANSFER | TF.VOID_PENDING_TRANSFER))
            t = tb.Transfer(
                id=transfer_id,
                debit_account_id=0 if resolving and d["debit"] == 0 else ids[d["debit"]],
                credit_account_id=0 if resolving and d["credit"] == 0 else ids[d["credit"]],
                amount=d["amount"],
                pending_id=pending_id if resolving else 0,
                ledger=0 if resolving else d["ledger"],
                code=0 if resolving else d["code"],
                flags=flags,
                timeout=d["timeout"] if int(flags) & int(TF.PENDING) else 0,
            )
            built.append(t)
            transfers.append(t)
        batches.append(built)
    return accounts, batches


async def _apply(
    client: LedgerClient, accounts: list[tb.Account], batches: list[list[tb.Transfer]]
) -> tuple[list[object], list[tuple[int, ...]], list[tuple[int, ...]]]:
    statuses: list[object] = [[r.status for r in await client.create_accounts(accounts)]]
    all_ids: list[int] = []
    for batch in batches:
        statuses.append([r.status for r in await client.create_transfers(batch)])
        all_ids.extend(t.id for t in batch)
    found_accounts = await client.lookup_accounts([a.id for a in accounts])
    found_transfers = await client.lookup_transfers(list(dict.fromkeys(all_ids)))
    balances: list[tuple[int, ...]] = [
        (a.id, a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted, int(a.flags))
        for a in found_accounts
    ]
    moved: list[tuple[int, ...]] = [
        (
            t.id,
            t.debit_account_id,
            t.credit_account_id,
            t.amount,
            t.pending_id,
            t.ledger,
            t.code,
            int(t.flags),
        )
        for t in found_transfers
    ]
    return statuses, balances, moved


# More examples for a long soak: KOVRA_DIFFERENTIAL_EXAMPLES=1000.
differential_examples = int(os.environ.get("KOVRA_DIFFERENTIAL_EXAMPLES", "60"))


@settings(
    max_examples=differential_examples, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(drawn=scenario)
def test_embedded_engine_and_cluster_agree(drawn: dict[str, object]) -> None:
    base = secrets.randbits(100) << 20  # Fresh ids on the shared cluster, every example.
    accounts, batches = _build(drawn, base)

    async def run_both() -> None:
        embedded = EmbeddedClient()
        cluster = TigerBeetleClient(TigerBeetleSettings.from_environment())
        try:
            assert await _apply(embedded, accounts, batches) == await _apply(
                cluster, accounts, batches
            )
        finally:
            await embedded.close()
            await cluster.close()

    asyncio.run(run_both())
