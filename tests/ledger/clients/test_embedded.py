"""`EmbeddedClient` behaves like `tigerbeetle.ClientAsync` at its edges.

It raises what the native client raises (`TooMuchDataError` above 8,189 events, ids or a
query limit; `IntegerOverflowError` for a field out of range, before anything is applied;
`ClientClosedError` after `close`), answers many concurrent requests of one event-loop turn
correctly with one journal write, and hands out copies that callers may mutate freely.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import tigerbeetle as tb

from ledger.clients import EmbeddedClient, batch_size_max
from ledger.embedded.journal import Journal
from tests.conftest import fresh_id
from tests.ledger.conformance.helpers import (
    AF,
    TF,
    T,
    account_filter,
    open_accounts,
    query_filter,
    statuses,
    transfer,
)

u128_max = (1 << 128) - 1
ns_per_s = 1_000_000_000
Call = Callable[[EmbeddedClient], Awaitable[Any]]


@pytest.fixture
async def client() -> AsyncIterator[EmbeddedClient]:
    embedded = EmbeddedClient()
    try:
        yield embedded
    finally:
        await embedded.close()


def _journal(client: EmbeddedClient) -> Journal:
    journal = client._journal
    assert journal is not None
    return journal


# ------------------------------------------------------------------------------------------
# TooMuchDataError.

too_many = batch_size_max + 1
oversized_calls: dict[str, Call] = {
    "create_accounts": lambda c: c.create_accounts(
        [tb.Account(id=fresh_id(), ledger=978, code=1) for _ in range(too_many)]
    ),
    "create_transfers": lambda c: c.create_transfers(
        [tb.Transfer(id=fresh_id(), ledger=978, code=1) for _ in range(too_many)]
    ),
    "lookup_accounts": lambda c: c.lookup_accounts(list(range(1, too_many + 1))),
    "lookup_transfers": lambda c: c.lookup_transfers(list(range(1, too_many + 1))),
    "get_account_transfers": lambda c: c.get_account_transfers(account_filter(1, limit=too_many)),
    "get_account_balances": lambda c: c.get_account_balances(account_filter(1, limit=too_many)),
    "query_accounts": lambda c: c.query_accounts(query_filter(limit=too_many)),
    "query_transfers": lambda c: c.query_transfers(query_filter(limit=too_many)),
}


@pytest.mark.parametrize("call", oversized_calls.values(), ids=oversized_calls.keys())
async def test_more_than_the_batch_maximum_is_too_much_data(
    client: EmbeddedClient, call: Call
) -> None:
    with pytest.raises(tb.TooMuchDataError):
        await call(client)
    # Refused whole: nothing was created, and the client still works.
    assert await client.query_accounts(query_filter(limit=batch_size_max)) == []
    assert await client.query_transfers(query_filter(limit=batch_size_max)) == []


async def test_exactly_the_batch_maximum_is_accepted(client: EmbeddedClient) -> None:
    ids = list(range(1, batch_size_max + 1))
    assert await client.lookup_accounts(ids) == []
    assert await client.lookup_transfers(ids) == []
    debit, credit = await open_accounts(client, AF.HISTORY, AF.NONE)
    assert await statuses(client, [transfer(debit, credit, 1) for _ in range(3)]) == [T.CREATED] * 3
    assert len(await client.get_account_transfers(account_filter(debit, limit=batch_size_max))) == 3
    assert len(await client.get_account_balances(account_filter(debit, limit=batch_size_max))) == 3
    assert len(await client.query_accounts(query_filter(limit=batch_size_max))) == 2
    assert len(await client.query_transfers(query_filter(limit=batch_size_max))) == 3


# ------------------------------------------------------------------------------------------
# IntegerOverflowError.

transfer_overflows = {
    "negative-amount": {"amount": -1},
    "amount-2^128": {"amount": 1 << 128},
    "ledger-2^32": {"ledger": 1 << 32},
    "negative-ledger": {"ledger": -1},
    "id-2^128": {"id": 1 << 128},
    "negative-id": {"id": -1},
    "debit-2^128": {"debit_account_id": 1 << 128},
    "credit-negative": {"credit_account_id": -5},
    "pending-id-2^128": {"pending_id": 1 << 128},
    "user-data-128-2^128": {"user_data_128": 1 << 128},
    "user-data-64-2^64": {"user_data_64": 1 << 64},
    "user-data-32-2^32": {"user_data_32": 1 << 32},
    "timeout-2^32": {"timeout": 1 << 32},
    "code-2^16": {"code": 1 << 16},
    "flags-2^16": {"flags": tb.TransferFlags(1 << 16)},
    "timestamp-2^64": {"timestamp": 1 << 64},
}


@pytest.mark.parametrize("fields", transfer_overflows.values(), ids=transfer_overflows.keys())
async def test_a_transfer_field_out_of_range_overflows(
    client: EmbeddedClient, fields: dict[str, Any]
) -> None:
    debit, credit = await open_accounts(client, AF.NONE, AF.NONE)
    valid = transfer(debit, credit, 1)
    invalid = dataclasses.replace(transfer(debit, credit, 1), **fields)
    with pytest.raises(tb.IntegerOverflowError):
        await client.create_transfers([valid, invalid])
    # Nothing of the batch was applied.
    assert await client.lookup_transfers([valid.id]) == []
    assert await statuses(client, [valid]) == [T.CREATED]


account_overflows = {
    "id-2^128": {"id": 1 << 128},
    "negative-id": {"id": -1},
    "ledger-2^32": {"ledger": 1 << 32},
    "negative-code": {"code": -1},
    "code-2^16": {"code": 1 << 16},
    "debits-posted-2^128": {"debits_posted": 1 << 128},
    "user-data-64-negative": {"user_data_64": -1},
    "timestamp-2^64": {"timestamp": 1 << 64},
}


@pytest.mark.parametrize("fields", account_overflows.values(), ids=account_overflows.keys())
async def test_an_account_field_out_of_range_overflows(
    client: EmbeddedClient, fields: dict[str, object]
) -> None:
    valid = tb.Account(id=fresh_id(), ledger=978, code=1)
    values: dict[str, object] = {"id": fresh_id(), "ledger": 978, "code": 1, **fields}
    invalid = tb.Account(**values)  # type: ignore[arg-type]
    with pytest.raises(tb.IntegerOverflowError):
        await client.create_accounts([valid, invalid])
    assert await client.lookup_accounts([valid.id]) == []


@pytest.mark.parametrize("bad_id", [1 << 128, u128_max + 7, -1])
async def test_a_lookup_id_out_of_range_overflows(client: EmbeddedClient, bad_id: int) -> None:
    with pytest.raises(tb.IntegerOverflowError):
        await client.lookup_accounts([1, bad_id])
    with pytest.raises(tb.IntegerOverflowError):
        await client.lookup_transfers([bad_id])
    assert await client.lookup_accounts([u128_max, 0]) == []


async def test_a_filter_field_out_of_range_overflows(client: EmbeddedClient) -> None:
    for bad_filter in (
        account_filter(1 << 128),
        account_filter(1, limit=-1),
        account_filter(1, code=1 << 16),
        account_filter(1, timestamp_min=-1),
    ):
        with pytest.raises(tb.IntegerOverflowError):
            await client.get_account_transfers(bad_filter)
        with pytest.raises(tb.IntegerOverflowError):
            await client.get_account_balances(bad_filter)
    for bad_query in (
        query_filter(ledger=1 << 32),
        query_filter(user_data_128=-1),
        query_filter(timestamp_max=1 << 64),
    ):
        with pytest.raises(tb.IntegerOverflowError):
            await client.query_accounts(bad_query)
        with pytest.raises(tb.IntegerOverflowError):
            await client.query_transfers(bad_query)


# ------------------------------------------------------------------------------------------
# ClientClosedError.

closed_calls: dict[str, Call] = {
    "create_accounts": lambda c: c.create_accounts([tb.Account(id=1, ledger=978, code=1)]),
    "create_transfers": lambda c: c.create_transfers([tb.Transfer(id=1, ledger=978, code=1)]),
    "create_nothing": lambda c: c.create_transfers([]),
    "lookup_accounts": lambda c: c.lookup_accounts([1]),
    "lookup_transfers": lambda c: c.lookup_transfers([1]),
    "get_account_transfers": lambda c: c.get_account_transfers(account_filter(1)),
    "get_account_balances": lambda c: c.get_account_balances(account_filter(1)),
    "query_accounts": lambda c: c.query_accounts(query_filter()),
    "query_transfers": lambda c: c.query_transfers(query_filter()),
}


@pytest.mark.parametrize("call", closed_calls.values(), ids=closed_calls.keys())
async def test_every_call_after_close_is_refused(tmp_path: Path, call: Call) -> None:
    for closed in (EmbeddedClient(), EmbeddedClient(tmp_path / "ledger.journal")):
        await closed.close()
        with pytest.raises(tb.ClientClosedError):
            await call(closed)
        await closed.close()  # Closing twice is harmless.
        with pytest.raises(tb.ClientClosedError):
            await call(closed)


async def test_close_releases_the_journal(tmp_path: Path) -> None:
    journal = tmp_path / "ledger.journal"
    first = EmbeddedClient(journal)
    await open_accounts(first, AF.NONE)
    size = journal.stat().st_size
    await first.close()
    with pytest.raises(tb.ClientClosedError):
        await first.create_accounts([tb.Account(id=fresh_id(), ledger=978, code=1)])
    assert journal.stat().st_size == size


# ------------------------------------------------------------------------------------------
# Batching of concurrent requests.


async def test_concurrent_requests_are_answered_each_with_its_own_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ledger.journal"
    client = EmbeddedClient(path)
    wallet, funding = await open_accounts(client, AF.DEBITS_MUST_NOT_EXCEED_CREDITS, AF.NONE)
    assert await statuses(client, [transfer(funding, wallet, 50)]) == [T.CREATED]

    journal = _journal(client)
    appends: list[int] = []
    append = journal.append

    def counting_append(records: bytes) -> None:
        appends.append(len(records))
        append(records)

    monkeypatch.setattr(journal, "append", counting_append)
    size_before = path.stat().st_size
    spends = [transfer(wallet, funding, 1, user_data_32=i) for i in range(100)]
    results = await asyncio.gather(*(client.create_transfers([s]) for s in spends))

    # The wallet holds 50: the first 50 requests of the turn succeed, in submission order.
    assert [len(r) for r in results] == [1] * 100
    assert [r[0].status for r in results] == [T.CREATED] * 50 + [T.EXCEEDS_CREDITS] * 50
    timestamps = [r[0].timestamp for r in results]
    assert timestamps == sorted(timestamps)
    assert len(set(timestamps)) == 100
    stored = await client.lookup_transfers([s.id for s in spends])
    assert [t.user_data_32 for t in stored] == list(range(50))
    assert [t.timestamp for t in stored] == timestamps[:50]
    # One write for the whole turn, holding all 100 requests.
    assert len(appends) == 1
    assert path.stat().st_size == size_before + appends[0]
    (account,) = await client.lookup_accounts([wallet])
    assert (account.debits_posted, account.credits_posted) == (50, 50)
    await client.close()

    reopened = EmbeddedClient(path)
    assert await reopened.lookup_transfers([s.id for s in spends]) == stored
    assert await reopened.lookup_accounts([wallet]) == [account]
    await reopened.close()


async def test_requests_of_one_turn_see_each_other_in_order(client: EmbeddedClient) -> None:
    account = tb.Account(id=fresh_id(), ledger=978, code=1)
    before, created, after = await asyncio.gather(
        client.lookup_accounts([account.id]),
        client.create_accounts([account]),
        client.lookup_accounts([account.id]),
    )
    assert before == []
    assert [r.status for r in created] == [tb.CreateAccountStatus.CREATED]
    assert [a.id for a in after] == [account.id]
    assert after[0].timestamp == created[0].timestamp


# ------------------------------------------------------------------------------------------
# Copies.


async def test_results_are_copies(client: EmbeddedClient) -> None:
    debit, credit = await open_accounts(client, AF.HISTORY, AF.NONE)
    sent = transfer(debit, credit, 10)
    assert await statuses(client, [sent]) == [T.CREATED]
    (account,) = await client.lookup_accounts([debit])
    (stored,) = await client.lookup_transfers([sent.id])
    pristine_account, pristine_transfer = copy.deepcopy(account), copy.deepcopy(stored)

    account.debits_posted = 1_000_000
    account.flags = AF.CLOSED
    stored.amount = 999
    for queried in await client.query_accounts(query_filter()):
        queried.credits_posted += 5
    for listed in await client.get_account_transfers(account_filter(debit)):
        listed.amount += 5
    for balance in await client.get_account_balances(account_filter(debit)):
        balance.debits_posted += 5
    for queried_transfer in await client.query_transfers(query_filter()):
        queried_transfer.credit_account_id = 1

    assert await client.lookup_accounts([debit]) == [pristine_account]
    assert await client.lookup_transfers([sent.id]) == [pristine_transfer]
    assert await client.get_account_transfers(account_filter(debit)) == [pristine_transfer]
    (balance,) = await client.get_account_balances(account_filter(debit))
    assert balance.debits_posted == 10
    # The ledger's own checks use the real state: the debit account is not closed.
    assert await statuses(client, [transfer(debit, credit, 1)]) == [T.CREATED]


async def test_events_are_not_kept_by_reference(client: EmbeddedClient) -> None:
    account = tb.Account(id=fresh_id(), ledger=978, code=1)
    (other,) = await open_accounts(client, AF.NONE)
    assert [r.status for r in await client.create_accounts([account])] == [
        tb.CreateAccountStatus.CREATED
    ]
    sent = transfer(account.id, other, 3)
    assert await statuses(client, [sent]) == [T.CREATED]
    account.credits_posted = 77
    account.flags = AF.CLOSED
    sent.amount = 1_000
    (stored_account,) = await client.lookup_accounts([account.id])
    (stored_transfer,) = await client.lookup_transfers([sent.id])
    assert (stored_account.credits_posted, stored_account.flags) == (0, AF.NONE)
    assert stored_transfer.amount == 3


# ------------------------------------------------------------------------------------------
# Expiry of a pending transfer whose id was used in a rolled-back chain.


class FakeClock:
    def __init__(self) -> None:
        self.now_ns = 1_750_000_000 * ns_per_s

    def __call__(self) -> int:
        return self.now_ns


async def test_a_rolled_back_pending_transfer_leaves_no_expiry_behind() -> None:
    clock = FakeClock()
    client = EmbeddedClient(clock_ns=clock)
    debit, credit = await open_accounts(client, AF.NONE, AF.NONE)
    hold_id = fresh_id()
    short_hold = transfer(debit, credit, 5, id=hold_id, flags=TF.PENDING | TF.LINKED, timeout=1)
    broken = transfer(debit, fresh_id(), 5)  # credit_account_not_found: the chain rolls back.
    long_hold = transfer(debit, credit, 5, id=hold_id, flags=TF.PENDING, timeout=3_600)
    assert await statuses(client, [short_hold, broken, long_hold]) == [
        T.LINKED_EVENT_FAILED,
        T.CREDIT_ACCOUNT_NOT_FOUND,
        T.CREATED,
    ]
    clock.now_ns += 2 * ns_per_s
    # The hold that exists has a one-hour timeout: two seconds later it is still pending.
    (account,) = await client.lookup_accounts([debit])
    assert account.debits_pending == 5
    post = transfer(0, 0, 5, ledger=0, code=0, pending_id=hold_id, flags=TF.POST_PENDING_TRANSFER)
    assert await statuses(client, [post]) == [T.CREATED]
    await client.close()
