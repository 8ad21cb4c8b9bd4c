"""Many chains in few requests (`ledger.chains`): chains are packed whole, in order, into as
few requests as TigerBeetle's limit allows; retried chains are compared with the ledger in as
few lookups as fit, every leg a step may have included, so one chain reusing an id for
another shape fails alone; an entry refused already sends nothing; and a chain that is not
one linked chain, or that TigerBeetle calls invalid, is a programmer error that raises.
Runs on the embedded engine, the ledger server and, with TB_ADDRESSES, a real cluster."""

from __future__ import annotations

import pytest
import tigerbeetle as tb
from hypothesis import given
from hypothesis import strategies as st

from ledger.chains import (
    Chain,
    create_chains,
    lookups_per_request_max,
    packed,
    transfers_per_request_max,
)
from ledger.clients import LedgerClient
from ledger.errors import HoldNotFound, LedgerIdConflict
from ledger.invariants import InvariantViolation
from ledger.service import Posted
from ledger.transfers import Leg, linked, new_object_id, transfer_id
from tests.ledger.conformance.helpers import AF, TF, T, ledger_eur, ledger_idr, open_accounts
from tests.ledger.fixtures import CountingClient

# A step with legs its chains never send: a retry must find them absent.
step_with_absent_legs = (Leg.DEPOSIT, Leg.REFUND_SOURCE, Leg.REFUND_FEE)


@given(
    lengths=st.lists(st.integers(min_value=1, max_value=8), max_size=60),
    transfers_max=st.integers(min_value=8, max_value=20),
)
def test_chains_are_packed_whole_in_order_into_as_few_requests_as_fit(
    lengths: list[int], transfers_max: int
) -> None:
    requests = packed(lengths, transfers_max=transfers_max)
    assert [index for request in requests for index in request] == list(range(len(lengths)))
    sizes = [sum(lengths[index] for index in request) for request in requests]
    assert all(0 < size <= transfers_max for size in sizes)
    # A request is closed only by a chain that does not fit in it.
    for size, following in zip(sizes, requests[1:], strict=False):
        assert size + lengths[following[0]] > transfers_max


def test_a_chain_longer_than_a_request_is_a_programmer_error() -> None:
    with pytest.raises(InvariantViolation):
        packed([3, 9, 2], transfers_max=8)


def _chain(debit: int, credit: int, *, legs: int = 1, ledger: int = ledger_eur) -> Chain:
    object_id = new_object_id()
    transfers = [
        tb.Transfer(
            id=transfer_id(object_id=object_id, leg=leg),
            debit_account_id=debit,
            credit_account_id=credit,
            amount=1,
            ledger=ledger,
            code=1,
            user_data_128=object_id,
        )
        for leg in step_with_absent_legs[:legs]
    ]
    return Chain(object_id=object_id, step=step_with_absent_legs, transfers=linked(transfers))


async def test_retried_chains_are_compared_in_as_few_lookups_as_fit(
    ledger_client: LedgerClient,
) -> None:
    counting = CountingClient(ledger_client)
    debit, credit = await open_accounts(counting, AF.NONE, AF.NONE)
    chains = [_chain(debit, credit) for _ in range(transfers_per_request_max + 1)]
    first = await create_chains(counting, chains)
    assert counting.create_transfers_sizes == [transfers_per_request_max, 1]
    assert counting.lookup_transfers_sizes == []
    assert all(isinstance(o, Posted) and not o.existed for o in first)
    # A leg of one chain's step that the chain does not send is now stored: its id was used
    # for something else, and the retry of that chain must say so.
    reused_id = transfer_id(object_id=chains[7].object_id, leg=step_with_absent_legs[2])
    stray = _with_id(_chain(debit, credit).transfers[0], reused_id)
    assert [r.status for r in await ledger_client.create_transfers([stray])] == [T.CREATED]
    counting.reset()

    again = await create_chains(counting, chains)
    assert counting.create_transfers_sizes == [transfers_per_request_max, 1]
    # Per chain its transfer and the two legs it must not have: three ids, so the first
    # request's chains fill three lookups (lookups carry as many ids as requests carry
    # transfers), and the second's one.
    assert lookups_per_request_max == transfers_per_request_max
    assert counting.lookup_transfers_sizes == [lookups_per_request_max] * 3 + [3]
    assert isinstance(again[7], LedgerIdConflict)
    for index, (before, after) in enumerate(zip(first, again, strict=True)):
        if index == 7:
            continue
        assert isinstance(before, Posted)
        assert isinstance(after, Posted)
        assert (after.transfer_id, after.timestamp_ns, after.existed) == (
            before.transfer_id,
            before.timestamp_ns,
            True,
        )


def _with_id(transfer: tb.Transfer, new_id: int) -> tb.Transfer:
    return tb.Transfer(
        id=new_id,
        debit_account_id=transfer.debit_account_id,
        credit_account_id=transfer.credit_account_id,
        amount=transfer.amount,
        ledger=transfer.ledger,
        code=transfer.code,
    )


async def test_entries_refused_already_send_nothing_and_stay_as_they_are(
    ledger_client: LedgerClient,
) -> None:
    counting = CountingClient(ledger_client)
    debit, credit = await open_accounts(counting, AF.NONE, AF.NONE)
    refused = HoldNotFound("no such hold")
    outcomes = await create_chains(counting, [refused, _chain(debit, credit), refused])
    assert outcomes[0] is refused
    assert outcomes[2] is refused
    assert isinstance(outcomes[1], Posted)
    assert counting.create_transfers_sizes == [1]
    counting.reset()
    assert await create_chains(counting, [refused]) == [refused]
    assert counting.create_transfers_sizes == []


async def test_a_chain_left_open_is_refused_before_any_request(
    ledger_client: LedgerClient,
) -> None:
    counting = CountingClient(ledger_client)
    debit, credit = await open_accounts(counting, AF.NONE, AF.NONE)
    chain = _chain(debit, credit, legs=2)
    open_chain = Chain(
        object_id=chain.object_id,
        step=chain.step,
        transfers=[chain.transfers[0], chain.transfers[0]],  # Both linked: no end.
    )
    assert chain.transfers[0].flags & TF.LINKED
    with pytest.raises(InvariantViolation):
        await create_chains(counting, [_chain(debit, credit), open_chain])
    assert counting.create_transfers_sizes == []


async def test_a_transfer_the_ledger_calls_invalid_raises_for_the_whole_call(
    ledger_client: LedgerClient,
) -> None:
    """Accounts of another currency than the transfer's: Kovra never builds that, so it is
    a bug, and a bug is never answered as one chain's refusal."""
    counting = CountingClient(ledger_client)
    debit, credit = await open_accounts(counting, AF.NONE, AF.NONE)
    with pytest.raises(InvariantViolation):
        await create_chains(
            counting, [_chain(debit, credit), _chain(debit, credit, ledger=ledger_idr)]
        )
