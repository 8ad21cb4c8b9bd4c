"""Many objects' linked chains in one `create_transfers` request, each with its own outcome.

The lifecycle worker moves payouts in batches, and each payout's step (reserve, commit,
abort, settle, refund) is a linked chain of its own. One request per chain would pay a round
trip per payout; one request for the batch pays one. Nothing is lost by it: TigerBeetle
applies a request's events in order and a failure stays inside its chain, so each chain meets
exactly the outcome it would have met sent alone, in the same order. Chains are packed whole
into requests of at most `transfers_per_request_max` events, and the requests go one after
another, so that order holds across them too.

A chain an earlier attempt applied answers `exists`, and what TigerBeetle did not compare is
compared here (see `ledger.outcomes`): the ids of every such chain of a request go in one
`lookup_transfers`, never one per chain, so a retried batch costs two round trips, not one
per payout.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec
import tigerbeetle as tb

from ledger.clients import LedgerClient, batch_size_max
from ledger.errors import LedgerError
from ledger.invariants import ensure
from ledger.outcomes import chain_rests_applied_before, check_found_as_sent, check_transfer_results
from ledger.service import Posted
from ledger.transfers import Leg, transfer_id

# One TigerBeetle request carries at most this many transfers; a chain is never split.
transfers_per_request_max: Final = batch_size_max
# A lookup carries at most this many ids, as a request carries transfers.
lookups_per_request_max: Final = batch_size_max
# The most chains one call takes: the largest batch the API accepts (SPEC §5), at one chain
# per item, so that no caller has to split a batch of its own.
chains_per_call_max: Final = 10_000


class Chain(msgspec.Struct, frozen=True, kw_only=True):
    """One object's step as one linked chain, and every leg that step may have: a retry whose
    chain lacks a leg that an earlier attempt applied (a fee since dropped) is a conflict."""

    object_id: int
    step: tuple[Leg, ...]
    transfers: list[tb.Transfer]


def packed(
    lengths: Sequence[int], *, transfers_max: int = transfers_per_request_max
) -> list[list[int]]:
    """The indices of chains of `lengths` transfers, in order, grouped into requests of at
    most `transfers_max` transfers without splitting a chain."""
    requests: list[list[int]] = []
    size = transfers_max  # The first chain opens the first request.
    for index, length in enumerate(lengths):
        ensure(0 < length <= transfers_max, "a chain fits one request")
        if size + length > transfers_max:
            requests.append([])
            size = 0
        requests[-1].append(index)
        size += length
    return requests


async def create_chains(
    client: LedgerClient, chains: Sequence[Chain | LedgerError]
) -> list[Posted | LedgerError]:
    """Create every chain, in order: per entry its `Posted` (`existed` when an earlier attempt
    had applied it), or the operating error that refused it. An entry that is an error already
    (an object refused before any request) stays as it is, so one bad object never fails the
    others. Programmer errors raise, and so does a ledger that does not answer: the outcome of
    every chain is then unknown, and sending them all again is safe."""
    ensure(len(chains) <= chains_per_call_max, "a call takes at most chains_per_call_max chains")
    outcomes: dict[int, Posted | LedgerError] = {}
    sendable: list[tuple[int, Chain]] = []
    for index, entry in enumerate(chains):
        if isinstance(entry, LedgerError):
            outcomes[index] = entry
        else:
            ensure(_is_one_chain(entry.transfers), "each object's legs are one linked chain")
            sendable.append((index, entry))
    for request in packed([len(chain.transfers) for _, chain in sendable]):
        outcomes.update(await _create_request(client, [sendable[i] for i in request]))
    return [outcomes[index] for index in range(len(chains))]


def _is_one_chain(transfers: Sequence[tb.Transfer]) -> bool:
    linked_flag = int(tb.TransferFlags.LINKED)
    return bool(transfers) and all(
        bool(int(transfer.flags) & linked_flag) == (position < len(transfers) - 1)
        for position, transfer in enumerate(transfers)
    )


async def _create_request(
    client: LedgerClient, chains: list[tuple[int, Chain]]
) -> dict[int, Posted | LedgerError]:
    """One `create_transfers` for `chains`, then one lookup for those applied before."""
    transfers = [transfer for _, chain in chains for transfer in chain.transfers]
    results = await client.create_transfers(transfers)
    ensure(len(results) == len(transfers), "one result per transfer")
    outcomes: dict[int, Posted | LedgerError] = {}
    # (index, the transfers to compare, the step's legs that must be absent) per chain whose
    # first transfer existed: its outcome stands only once the lookup agrees.
    to_compare: list[tuple[int, list[tb.Transfer], list[int]]] = []
    offset = 0
    for index, chain in chains:
        chain_results = results[offset : offset + len(chain.transfers)]
        offset += len(chain.transfers)
        try:
            timestamps = check_transfer_results(chain.transfers, chain_results)
        except LedgerError as error:
            outcomes[index] = error
            continue
        comparison = _applied_before(chain, chain_results)
        outcomes[index] = Posted(
            transfer_id=chain.transfers[0].id,
            timestamp_ns=timestamps[0],
            existed=comparison is not None,
        )
        if comparison is not None:
            to_compare.append((index, *comparison))
    if to_compare:
        ids = [transfer.id for _, sent, _ in to_compare for transfer in sent]
        ids += [leg_id for _, _, absent_ids in to_compare for leg_id in absent_ids]
        stored = await _lookup(client, ids)
        for index, sent, absent_ids in to_compare:
            try:
                check_found_as_sent(sent, stored, absent_ids=absent_ids)
            except LedgerError as error:
                outcomes[index] = error
    return outcomes


def _applied_before(
    chain: Chain, results: Sequence[tb.CreateTransferResult]
) -> tuple[list[tb.Transfer], list[int]] | None:
    """For a chain an earlier attempt applied (its first transfer `exists`): the transfers
    TigerBeetle did not compare (or the first, for a chain of one) and the ids of the step's
    legs this chain does not have; None for a chain applied now."""
    (rest,) = chain_rests_applied_before(chain.transfers, results)
    if not rest and results[0].status is not tb.CreateTransferStatus.EXISTS:
        return None
    sent = {transfer.id for transfer in chain.transfers}
    every_leg = (transfer_id(object_id=chain.object_id, leg=leg) for leg in chain.step)
    return rest or chain.transfers[:1], [leg_id for leg_id in every_leg if leg_id not in sent]


async def _lookup(client: LedgerClient, ids: list[int]) -> dict[int, tb.Transfer]:
    """The stored transfers of `ids`, by id, in as few lookups as TigerBeetle allows."""
    unique = list(dict.fromkeys(ids))
    stored: dict[int, tb.Transfer] = {}
    for start in range(0, len(unique), lookups_per_request_max):
        found = await client.lookup_transfers(unique[start : start + lookups_per_request_max])
        stored.update((transfer.id, transfer) for transfer in found)
    return stored
