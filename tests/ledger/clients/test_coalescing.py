"""`ledger.clients.coalescing.CoalescingClient` on the embedded engine, the ledger server and (with
TB_ADDRESSES) a real cluster.

Proves that the chains of many concurrent callers in one loop turn go out as one ledger
request and each caller gets exactly its own results: a chain that fails (no funds) fails
alone while its neighbours are created, and balances equal the sum of the chains that
succeeded; that an open chain goes alone and cannot swallow a neighbour; that a transfer the
client refuses (a field out of range) fails only its own caller; and that a turn with more
than one request's worth of transfers is split, never over `batch_size_max`.
"""

from __future__ import annotations

import asyncio

import tigerbeetle as tb

from ledger.clients import CoalescingClient, LedgerClient, batch_size_max
from ledger.invariants import InvariantViolation
from tests.ledger.conformance.helpers import AF, TF, T, account, open_accounts, transfer


class CountingClient:
    """Passes every call to the real client and remembers the size of each request."""

    def __init__(self, client: LedgerClient) -> None:
        self.client = client
        self.request_sizes: list[int] = []

    async def create_transfers(self, transfers: list[tb.Transfer]) -> list[tb.CreateTransferResult]:
        self.request_sizes.append(len(transfers))
        return await self.client.create_transfers(transfers)

    def __getattr__(self, name: str) -> object:
        return getattr(self.client, name)


def _coalescing(ledger_client: LedgerClient) -> tuple[CoalescingClient, CountingClient]:
    counting = CountingClient(ledger_client)
    return CoalescingClient(counting), counting  # type: ignore[arg-type]


async def test_concurrent_chains_share_one_request_and_keep_their_own_results(
    ledger_client: LedgerClient,
) -> None:
    coalescing, counting = _coalescing(ledger_client)
    funded, wallet, revenue = await open_accounts(
        ledger_client, AF.NONE, AF.DEBITS_MUST_NOT_EXCEED_CREDITS, AF.NONE
    )
    funding = await coalescing.create_transfers([transfer(funded, wallet, 1_000)])
    assert [r.status for r in funding] == [T.CREATED]
    chains = [
        # Every fifth chain asks for more than the wallet could ever hold: it fails alone.
        [
            transfer(wallet, revenue, 10**9 if index % 5 == 0 else 3, flags=TF.LINKED),
            transfer(wallet, revenue, 1),
        ]
        for index in range(100)
    ]
    counting.request_sizes.clear()
    results = await asyncio.gather(*(coalescing.create_transfers(chain) for chain in chains))
    assert counting.request_sizes == [200]
    for index, (chain, result) in enumerate(zip(chains, results, strict=True)):
        assert len(result) == len(chain)
        if index % 5 == 0:
            assert [r.status for r in result] == [
                T.EXCEEDS_CREDITS,
                T.LINKED_EVENT_FAILED,
            ]
        else:
            assert [r.status for r in result] == [T.CREATED, T.CREATED]
            assert all(r.timestamp > 0 for r in result)
    assert (await account(ledger_client, wallet)).debits_posted == 80 * 4


async def test_an_open_chain_goes_alone(ledger_client: LedgerClient) -> None:
    coalescing, counting = _coalescing(ledger_client)
    debit, credit = await open_accounts(ledger_client, AF.NONE, AF.NONE)
    open_chain = [transfer(debit, credit, 1, flags=TF.LINKED)]
    neighbour = [transfer(debit, credit, 2)]
    opened, closed = await asyncio.gather(
        coalescing.create_transfers(open_chain), coalescing.create_transfers(neighbour)
    )
    assert [r.status for r in opened] == [T.LINKED_EVENT_CHAIN_OPEN]
    assert [r.status for r in closed] == [T.CREATED]
    assert sorted(counting.request_sizes) == [1, 1]


async def test_a_refused_field_fails_only_its_own_caller(ledger_client: LedgerClient) -> None:
    coalescing, _ = _coalescing(ledger_client)
    debit, credit = await open_accounts(ledger_client, AF.NONE, AF.NONE)
    outcomes = await asyncio.gather(
        coalescing.create_transfers([transfer(debit, credit, 5)]),
        coalescing.create_transfers([transfer(debit, credit, 1, user_data_32=2**32)]),
        coalescing.create_transfers([transfer(debit, credit, 7)]),
        return_exceptions=True,
    )
    first, refused, last = outcomes
    # The native client's IntegerOverflowError; our TigerBeetle adapter reports it as the
    # programmer's error it is.
    assert isinstance(refused, tb.IntegerOverflowError | InvariantViolation)
    assert not isinstance(first, BaseException)
    assert not isinstance(last, BaseException)
    assert [r.status for r in first] == [T.CREATED]
    assert [r.status for r in last] == [T.CREATED]
    assert (await account(ledger_client, credit)).credits_posted == 12


async def test_a_full_turn_is_split_below_the_request_limit(ledger_client: LedgerClient) -> None:
    coalescing, counting = _coalescing(ledger_client)
    debit, credit = await open_accounts(ledger_client, AF.NONE, AF.NONE)
    calls = [[transfer(debit, credit, 1) for _ in range(3_000)] for _ in range(3)]
    results = await asyncio.gather(*(coalescing.create_transfers(call) for call in calls))
    assert [len(result) for result in results] == [3_000] * 3
    assert all(r.status is T.CREATED for result in results for r in result)
    assert max(counting.request_sizes) <= batch_size_max
    assert sorted(counting.request_sizes) == [3_000, 6_000]
