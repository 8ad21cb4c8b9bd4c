"""The TigerBeetle adapter's own logic, against a hand-written fake of `tigerbeetle.ClientAsync`.

Proves that `split_chains`/`pack_chunks` never split a linked chain (hypothesis); that creates
and lookups above the 8,189-event batch maximum are chunked with results in order; that a
cluster accepting smaller requests (`TooMuchDataError`, raised by the native client before it
sends anything) makes the adapter split between chains, remember the smaller size and still
answer one result per event, while a chain too large for any request is an
`InvariantViolation`, not a loop; that query limits above the maximum are refused before the
call; that a call which never answers becomes `LedgerUnavailable` after the configured timeout
without cancelling the native call or leaking its late outcome; that every native exception
maps to a typed error and eviction reconnects; that `close()` is idempotent and final; and
that `TigerBeetleSettings.from_environment` validates its three variables. Real asyncio, no
cluster.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

import pytest
import tigerbeetle as tb
from hypothesis import given, settings
from hypothesis import strategies as st
from tigerbeetle.client import InitError

from ledger.clients import batch_size_max, timeout_ms_default, timeout_ms_max
from ledger.clients.tigerbeetle import (
    TigerBeetleClient,
    TigerBeetleSettings,
    pack_chunks,
    split_chains,
)
from ledger.errors import LedgerUnavailable
from ledger.invariants import InvariantViolation
from tests import virtual_time

TF = tb.TransferFlags
AF = tb.AccountFlags
Kind = Literal["accounts", "transfers"]
kinds: list[Kind] = ["accounts", "transfers"]

# A `--development` replica takes 32 KiB requests: 250 events of 128 bytes, 2,000 ids of 16.
development_event_limit = 250
development_id_limit = 2_000

test_addresses = "127.0.0.1:3000"
test_cluster_id = 7


class FakeNative:
    """A stand-in for `tigerbeetle.ClientAsync`: its signatures and its failure modes.

    Like the real client it refuses a request above its size limit with `TooMuchDataError`
    before doing anything, answers one CREATED result per created event (whose timestamp
    echoes the event's id, so tests can check order), finds every looked-up id, and raises
    `ClientClosedError` once closed. `gate` makes calls wait until the test sets it;
    `failures` are raised, one per call, once a call is answered.
    """

    def __init__(
        self,
        *,
        request_limit: int = batch_size_max,
        lookup_limit: int = batch_size_max,
        max_calls: int = 10_000,
    ) -> None:
        self.request_limit = request_limit
        self.lookup_limit = lookup_limit
        self.max_calls = max_calls
        self.gate: asyncio.Event | None = None
        self.failures: list[Exception] = []
        self.close_failure: Exception | None = None
        self.accepted: list[tuple[str, list[int]]] = []
        self.rejected: list[tuple[str, int]] = []
        self.tasks: list[asyncio.Task[Any]] = []
        self.started = 0
        self.answered = 0
        self.cancelled = 0
        self.close_calls = 0
        self.closed = False
        self.runaway = False

    async def _serve(self, operation: str, ids: list[int], limit: int) -> None:
        self.started += 1
        task = asyncio.current_task()
        assert task is not None
        self.tasks.append(task)
        if self.started > self.max_calls:  # A splitting loop that never ends.
            self.runaway = True
            raise tb.ClientClosedError()
        if self.closed:
            raise tb.ClientClosedError()
        if len(ids) > limit:
            self.rejected.append((operation, len(ids)))
            raise tb.TooMuchDataError()
        if self.gate is not None:
            try:
                await self.gate.wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        self.answered += 1
        if self.failures:
            raise self.failures.pop(0)
        self.accepted.append((operation, ids))

    async def create_accounts(self, accounts: list[tb.Account]) -> list[tb.CreateAccountResult]:
        await self._serve("create_accounts", [a.id for a in accounts], self.request_limit)
        return [
            tb.CreateAccountResult(timestamp=a.id, status=tb.CreateAccountStatus.CREATED)
            for a in accounts
        ]

    async def create_transfers(self, transfers: list[tb.Transfer]) -> list[tb.CreateTransferResult]:
        await self._serve("create_transfers", [t.id for t in transfers], self.request_limit)
        return [
            tb.CreateTransferResult(timestamp=t.id, status=tb.CreateTransferStatus.CREATED)
            for t in transfers
        ]

    async def lookup_accounts(self, accounts: list[int]) -> list[tb.Account]:
        await self._serve("lookup_accounts", list(accounts), self.lookup_limit)
        return [tb.Account(id=i, ledger=978, code=1) for i in accounts]

    async def lookup_transfers(self, transfers: list[int]) -> list[tb.Transfer]:
        await self._serve("lookup_transfers", list(transfers), self.lookup_limit)
        return [tb.Transfer(id=i, ledger=978, code=1) for i in transfers]

    async def get_account_transfers(self, filter: tb.AccountFilter) -> list[tb.Transfer]:  # noqa: A002
        await self._serve("get_account_transfers", [], 1)
        return []

    async def get_account_balances(
        self,
        filter: tb.AccountFilter,  # noqa: A002
    ) -> list[tb.AccountBalance]:
        await self._serve("get_account_balances", [], 1)
        return []

    async def query_accounts(self, query_filter: tb.QueryFilter) -> list[tb.Account]:
        await self._serve("query_accounts", [], 1)
        return []

    async def query_transfers(self, query_filter: tb.QueryFilter) -> list[tb.Transfer]:
        await self._serve("query_transfers", [], 1)
        return []

    async def close(self) -> None:
        self.close_calls += 1
        self.closed = True
        if self.close_failure is not None:
            raise self.close_failure


class Factory:
    """A `native_factory` that builds a fresh fake per call and records its arguments."""

    def __init__(self, make: Callable[[], FakeNative] = FakeNative) -> None:
        self.make = make
        self.built: list[FakeNative] = []
        self.arguments: list[tuple[int, str]] = []
        self.failure: Exception | None = None

    def __call__(self, cluster_id: int, addresses: str) -> FakeNative:
        self.arguments.append((cluster_id, addresses))
        if self.failure is not None:
            raise self.failure
        fake = self.make()
        self.built.append(fake)
        return fake


def _settings(timeout_ms: int = timeout_ms_default) -> TigerBeetleSettings:
    return TigerBeetleSettings(
        addresses=test_addresses, cluster_id=test_cluster_id, timeout_ms=timeout_ms
    )


def _client(fake: FakeNative, timeout_ms: int = timeout_ms_default) -> TigerBeetleClient:
    return TigerBeetleClient(_settings(timeout_ms), native_factory=lambda _c, _a: fake)


def _pattern(chain_lengths: Sequence[int], open_tail: int = 0) -> list[bool]:
    """LINKED flags for closed chains of the given lengths, then an open chain of `open_tail`."""
    linked: list[bool] = []
    for length in chain_lengths:
        linked += [True] * (length - 1) + [False]
    return linked + [True] * open_tail


def _transfers(linked: Sequence[bool], *, first_id: int = 1) -> list[tb.Transfer]:
    return [
        tb.Transfer(id=first_id + i, ledger=978, code=1, flags=TF.LINKED if link else TF.NONE)
        for i, link in enumerate(linked)
    ]


def _accounts(linked: Sequence[bool], *, first_id: int = 1) -> list[tb.Account]:
    return [
        tb.Account(id=first_id + i, ledger=978, code=1, flags=AF.LINKED if link else AF.NONE)
        for i, link in enumerate(linked)
    ]


async def _create(
    client: TigerBeetleClient, kind: Kind, linked: Sequence[bool], *, first_id: int = 1
) -> list[int]:
    """Create one event per entry of `linked`; return the results' timestamps (echoed ids)."""
    if kind == "accounts":
        account_results = await client.create_accounts(_accounts(linked, first_id=first_id))
        assert {r.status for r in account_results} <= {tb.CreateAccountStatus.CREATED}
        return [r.timestamp for r in account_results]
    transfer_results = await client.create_transfers(_transfers(linked, first_id=first_id))
    assert {r.status for r in transfer_results} <= {tb.CreateTransferStatus.CREATED}
    return [r.timestamp for r in transfer_results]


async def _lookup(client: TigerBeetleClient, kind: Kind, ids: list[int]) -> list[int]:
    if kind == "accounts":
        return [a.id for a in await client.lookup_accounts(ids)]
    return [t.id for t in await client.lookup_transfers(ids)]


def _assert_whole_chains(sizes: Sequence[int], linked: Sequence[bool]) -> None:
    """The requests cover the input exactly and every cut falls after an unlinked event."""
    assert sum(sizes) == len(linked)
    for boundary in itertools.accumulate(sizes[:-1]):
        assert not linked[boundary - 1], f"a linked chain was split at event {boundary}"


def _sizes(fake: FakeNative) -> list[int]:
    return [len(ids) for _, ids in fake.accepted]


def _accepted_ids(fake: FakeNative) -> list[int]:
    return [i for _, ids in fake.accepted for i in ids]


def _account_filter(limit: int) -> tb.AccountFilter:
    return tb.AccountFilter(
        account_id=1,
        user_data_128=0,
        user_data_64=0,
        user_data_32=0,
        code=0,
        timestamp_min=0,
        timestamp_max=0,
        limit=limit,
        flags=tb.AccountFilterFlags.DEBITS | tb.AccountFilterFlags.CREDITS,
    )


def _query_filter(limit: int) -> tb.QueryFilter:
    return tb.QueryFilter(
        user_data_128=0,
        user_data_64=0,
        user_data_32=0,
        ledger=978,
        code=0,
        timestamp_min=0,
        timestamp_max=0,
        limit=limit,
        flags=tb.QueryFilterFlags.NONE,
    )


Query = Callable[[TigerBeetleClient, int], Awaitable[object]]
queries: dict[str, Query] = {
    "get_account_transfers": lambda c, limit: c.get_account_transfers(_account_filter(limit)),
    "get_account_balances": lambda c, limit: c.get_account_balances(_account_filter(limit)),
    "query_accounts": lambda c, limit: c.query_accounts(_query_filter(limit)),
    "query_transfers": lambda c, limit: c.query_transfers(_query_filter(limit)),
}

Operation = Callable[[TigerBeetleClient], Awaitable[object]]


def _with_small_limit(query: Query) -> Operation:
    return lambda client: query(client, 10)


operations: dict[str, Operation] = {
    "create_accounts": lambda c: c.create_accounts(_accounts([False])),
    "create_transfers": lambda c: c.create_transfers(_transfers([False])),
    "lookup_accounts": lambda c: c.lookup_accounts([1]),
    "lookup_transfers": lambda c: c.lookup_transfers([1]),
    **{name: _with_small_limit(query) for name, query in queries.items()},
}


async def _until(condition: Callable[[], bool]) -> None:
    """Let the loop run until `condition` holds (a bounded number of turns)."""
    for _ in range(100):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


def _record_loop_errors() -> list[dict[str, Any]]:
    """Collect what the running loop reports (e.g. "Task exception was never retrieved")."""
    reported: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(
        lambda _loop, context: reported.append(context)
    )
    return reported


# ------------------------------------------------------------------------------------------
# split_chains and pack_chunks, pure.

other_transfer_flags = [
    TF.NONE,
    TF.PENDING,
    TF.POST_PENDING_TRANSFER,
    TF.VOID_PENDING_TRANSFER,
    TF.BALANCING_DEBIT,
    TF.CLOSING_CREDIT | TF.PENDING,
    TF.IMPORTED,
]


def _linked_patterns(max_size: int) -> st.SearchStrategy[list[bool]]:
    """Coin-flip LINKED patterns, and runs of chains up to 60 long with an open tail."""
    flips = st.lists(st.booleans(), max_size=max_size)
    chains = st.builds(
        _pattern,
        st.lists(st.integers(min_value=1, max_value=60), max_size=max_size // 30),
        st.integers(min_value=0, max_value=20),
    )
    return st.one_of(flips, chains)


@st.composite
def _flagged_transfers(draw: st.DrawFn) -> list[tb.Transfer]:
    """Transfers with a random LINKED pattern and random other flags beside it."""
    linked = draw(_linked_patterns(150))
    others = draw(
        st.lists(st.sampled_from(other_transfer_flags), min_size=len(linked), max_size=len(linked))
    )
    return [
        tb.Transfer(id=i + 1, flags=(other | TF.LINKED) if link else other)
        for i, (link, other) in enumerate(zip(linked, others, strict=True))
    ]


def _is_linked(event: tb.Transfer) -> bool:
    return bool(event.flags & TF.LINKED)


@settings(max_examples=300, deadline=None)
@given(_flagged_transfers())
def test_split_chains_cuts_after_each_unlinked_event_and_keeps_an_open_tail(
    events: list[tb.Transfer],
) -> None:
    chains = split_chains(events, int(TF.LINKED))
    assert [e for chain in chains for e in chain] == events
    for chain in chains:
        assert chain
        assert all(_is_linked(e) for e in chain[:-1])
    for chain in chains[:-1]:
        assert not _is_linked(chain[-1])
    open_tail = bool(events) and _is_linked(events[-1])
    assert len(chains) == sum(not _is_linked(e) for e in events) + open_tail


@settings(max_examples=300, deadline=None)
@given(_flagged_transfers(), st.integers(min_value=1, max_value=40))
def test_pack_chunks_never_splits_a_chain(events: list[tb.Transfer], size_limit: int) -> None:
    chunks = pack_chunks(split_chains(events, int(TF.LINKED)), size_limit)
    assert [e for chunk in chunks for e in chunk] == events
    assert all(chunks)
    for chunk in chunks[:-1]:
        assert not _is_linked(chunk[-1]), "a chunk boundary split a linked chain"
    for chunk in chunks:
        chains_in_chunk = sum(not _is_linked(e) for e in chunk[:-1]) + 1
        if len(chunk) > size_limit:
            assert chains_in_chunk == 1, "an oversize chunk holds more than its one chain"
    for chunk, following in itertools.pairwise(chunks):
        first_chain_length = next(
            (i + 1 for i, e in enumerate(following) if not _is_linked(e)), len(following)
        )
        assert len(chunk) + first_chain_length > size_limit, "packing left room unused"
    if events and _is_linked(events[-1]):
        tail = len(events) - next(
            (i + 1 for i in reversed(range(len(events))) if not _is_linked(events[i])), 0
        )
        assert len(chunks[-1]) >= tail, "the open chain at the end was split"


def test_an_open_chain_at_the_end_stays_whole() -> None:
    events = _transfers([False, True, True, True])
    chains = split_chains(events, int(TF.LINKED))
    assert chains == [events[:1], events[1:]]
    assert pack_chunks(chains, 2) == [events[:1], events[1:]]
    assert pack_chunks(split_chains(events[1:], int(TF.LINKED)), 1) == [events[1:]]


# ------------------------------------------------------------------------------------------
# Chunking at the batch maximum.


@pytest.mark.parametrize("kind", kinds)
async def test_creates_above_the_batch_maximum_are_chunked_in_order(kind: Kind) -> None:
    fake = FakeNative()
    client = _client(fake)
    linked = [False] * (2 * batch_size_max + 3)
    timestamps = await _create(client, kind, linked)
    assert timestamps == list(range(1, len(linked) + 1))
    assert _sizes(fake) == [batch_size_max, batch_size_max, 3]
    assert fake.rejected == []
    assert _accepted_ids(fake) == timestamps


@pytest.mark.parametrize("kind", kinds)
async def test_a_chain_straddling_the_batch_maximum_moves_whole_to_the_next_chunk(
    kind: Kind,
) -> None:
    fake = FakeNative()
    client = _client(fake)
    linked = _pattern([1] * 8_180 + [20] + [1] * 9_000)
    timestamps = await _create(client, kind, linked)
    assert timestamps == list(range(1, len(linked) + 1))
    assert _sizes(fake)[0] == 8_180
    assert max(_sizes(fake)) <= batch_size_max
    _assert_whole_chains(_sizes(fake), linked)
    assert fake.rejected == []


@pytest.mark.parametrize("kind", kinds)
async def test_lookups_above_the_batch_maximum_are_chunked_in_order(kind: Kind) -> None:
    fake = FakeNative()
    client = _client(fake)
    ids = list(range(1, batch_size_max + 2))
    assert await _lookup(client, kind, ids) == ids
    assert _sizes(fake) == [batch_size_max, 1]


# ------------------------------------------------------------------------------------------
# A cluster that takes smaller requests: TooMuchDataError.


@pytest.mark.parametrize("kind", kinds)
async def test_too_much_data_splits_between_chains_and_remembers_the_smaller_size(
    kind: Kind,
) -> None:
    fake = FakeNative(request_limit=development_event_limit)
    client = _client(fake)
    assert client.request_size_limit == batch_size_max
    linked = _pattern([1, 7, 1, 40, 3, 1, development_event_limit, 2, 13] * 6, open_tail=5)
    timestamps = await _create(client, kind, linked)

    assert timestamps == list(range(1, len(linked) + 1)), "one result per event, in order"
    assert _accepted_ids(fake) == timestamps, "each event was created exactly once"
    assert fake.rejected, "the fake refused the first, oversize request"
    assert max(_sizes(fake)) <= development_event_limit
    _assert_whole_chains(_sizes(fake), linked)
    assert client.request_size_limit <= development_event_limit

    # The learned size is kept: the next batch goes through without a single refusal.
    refusals = len(fake.rejected)
    fake.accepted.clear()
    again = await _create(client, kind, linked, first_id=10_001)
    assert again == list(range(10_001, 10_001 + len(linked)))
    assert len(fake.rejected) == refusals
    _assert_whole_chains(_sizes(fake), linked)


@pytest.mark.parametrize("kind", kinds)
@settings(max_examples=60, deadline=None)
@given(linked=_linked_patterns(400), limit=st.integers(min_value=1, max_value=120))
async def test_the_adapter_splits_any_batch_without_breaking_chains(
    kind: Kind, linked: list[bool], limit: int
) -> None:
    fake = FakeNative(request_limit=limit)
    client = _client(fake)
    longest_chain = max((len(chain) for chain in split_chains(_transfers(linked), 1)), default=0)
    if longest_chain > limit:
        with pytest.raises(InvariantViolation, match="does not fit one request"):
            await _create(client, kind, linked)
    else:
        timestamps = await _create(client, kind, linked)
        assert timestamps == list(range(1, len(linked) + 1))
        assert _accepted_ids(fake) == timestamps
        assert all(size <= limit for size in _sizes(fake))
        _assert_whole_chains(_sizes(fake), linked)
        learned = client.request_size_limit
        assert (learned < batch_size_max) == bool(fake.rejected)
    assert not fake.runaway
    assert len(fake.rejected) <= max(1, len(linked)), "every split makes progress"


@pytest.mark.parametrize("kind", kinds)
async def test_a_chain_that_cannot_fit_even_alone_is_an_invariant_violation(
    kind: Kind,
) -> None:
    fake = FakeNative(request_limit=development_event_limit, max_calls=100)
    client = _client(fake)
    linked = _pattern([1, 1, 1, development_event_limit + 50, 1, 1, 1])
    with pytest.raises(InvariantViolation, match="a linked chain of 300 events"):
        await _create(client, kind, linked)
    assert not fake.runaway
    assert len(fake.rejected) <= 3
    assert _accepted_ids(fake) == [1, 2, 3], "nothing after the chain was sent"


@pytest.mark.parametrize("kind", kinds)
async def test_a_chain_above_the_batch_maximum_is_an_invariant_violation(kind: Kind) -> None:
    fake = FakeNative(max_calls=100)
    client = _client(fake)
    with pytest.raises(InvariantViolation, match="does not fit one request"):
        await _create(client, kind, _pattern([batch_size_max + 1]))
    assert fake.accepted == []
    assert not fake.runaway


@pytest.mark.parametrize("kind", kinds)
async def test_lookups_split_on_too_much_data_and_remember_it(kind: Kind) -> None:
    fake = FakeNative(lookup_limit=development_id_limit)
    client = _client(fake)
    ids = list(range(1, 5_001))
    assert await _lookup(client, kind, ids) == ids
    assert _accepted_ids(fake) == ids
    assert fake.rejected
    assert max(_sizes(fake)) <= development_id_limit

    refusals = len(fake.rejected)
    fake.accepted.clear()
    assert await _lookup(client, kind, ids) == ids
    assert len(fake.rejected) == refusals, "the smaller lookup size was remembered"
    assert max(_sizes(fake)) <= development_id_limit


@pytest.mark.parametrize("kind", kinds)
async def test_a_lookup_of_one_id_too_large_is_an_invariant_violation(kind: Kind) -> None:
    fake = FakeNative(lookup_limit=0, max_calls=100)
    client = _client(fake)
    with pytest.raises(InvariantViolation, match="one id does not fit"):
        await _lookup(client, kind, [1, 2, 3])
    assert not fake.runaway


# ------------------------------------------------------------------------------------------
# Query limits.


@pytest.mark.parametrize("name", sorted(queries))
async def test_a_query_limit_above_the_batch_maximum_is_refused_before_the_call(
    name: str,
) -> None:
    fake = FakeNative()
    client = _client(fake)
    with pytest.raises(InvariantViolation, match="exceeds 8189"):
        await queries[name](client, batch_size_max + 1)
    assert fake.started == 0
    await queries[name](client, batch_size_max)
    assert [operation for operation, _ in fake.accepted] == [name]


# ------------------------------------------------------------------------------------------
# Bounded waits.


@pytest.mark.parametrize("late_failure", [False, True], ids=["late-answer", "late-failure"])
def test_a_call_that_never_answers_times_out_without_being_cancelled(late_failure: bool) -> None:
    """On a virtual clock: the call gives up exactly at its timeout, however busy the machine."""
    virtual_time.run(_never_answering_call(late_failure))


async def _never_answering_call(late_failure: bool) -> None:
    reported = _record_loop_errors()
    fake = FakeNative()
    gate = fake.gate = asyncio.Event()
    if late_failure:
        fake.failures.append(Exception("Unexpected PacketStatus"))
    client = _client(fake, timeout_ms=50)

    started = virtual_time.now()
    with pytest.raises(LedgerUnavailable, match="did not answer within 50 ms"):
        await client.create_transfers(_transfers([False]))
    assert virtual_time.now() - started == pytest.approx(0.05)

    await asyncio.sleep(0.02)  # Time passes after the timeout: the native call runs on.
    (native_call,) = fake.tasks
    assert not native_call.done(), "the native call is still pending after the timeout"
    assert (fake.started, fake.answered, fake.cancelled) == (1, 0, 0)

    gate.set()
    await _until(native_call.done)
    assert not native_call.cancelled()
    assert (fake.answered, fake.cancelled) == (1, 0)
    if late_failure:
        assert fake.accepted == []
    else:
        assert native_call.result() == [
            tb.CreateTransferResult(timestamp=1, status=tb.CreateTransferStatus.CREATED)
        ]
        assert fake.accepted == [("create_transfers", [1])]

    # The client is still usable, and the late outcome was absorbed, not left unretrieved.
    results = await client.create_transfers(_transfers([False], first_id=2))
    assert [r.timestamp for r in results] == [2]
    del native_call
    fake.tasks.clear()
    await asyncio.sleep(0)
    gc.collect()
    await asyncio.sleep(0)
    assert reported == []
    await client.close()


async def test_a_cancelled_caller_leaves_the_call_running_and_absorbs_its_failure() -> None:
    """A caller cancelled mid-call (a disconnect, an outer timeout) is another bounded wait."""
    reported = _record_loop_errors()
    fake = FakeNative()
    gate = fake.gate = asyncio.Event()
    fake.failures.append(Exception("Unexpected PacketStatus"))
    client = _client(fake)

    caller = asyncio.create_task(client.create_transfers(_transfers([False])))
    await _until(lambda: fake.started == 1)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    (native_call,) = fake.tasks
    assert not native_call.done(), "cancelling the caller must not cancel the native call"

    gate.set()
    await _until(native_call.done)
    assert (fake.answered, fake.cancelled) == (1, 0)
    del native_call
    fake.tasks.clear()
    await asyncio.sleep(0)
    gc.collect()
    await asyncio.sleep(0)
    assert [context.get("message") for context in reported] == []
    await client.close()


# ------------------------------------------------------------------------------------------
# Exception mapping and reconnection.


@pytest.mark.parametrize("operation", sorted(operations))
@pytest.mark.parametrize(
    ("failure", "expected", "message"),
    [
        (tb.ClientClosedError, LedgerUnavailable, "client was closed"),
        (tb.ClientReleaseTooLowError, LedgerUnavailable, "requires a newer tigerbeetle client"),
        (tb.ClientReleaseTooHighError, LedgerUnavailable, "older than the tigerbeetle client"),
        (
            lambda: tb.IntegerOverflowError("amount==2**128 is too large to fit in 128 bits"),
            InvariantViolation,
            "out of range: amount==2",
        ),
        (
            lambda: Exception("Unexpected PacketStatus"),
            InvariantViolation,
            "Unexpected PacketStatus",
        ),
    ],
    ids=["closed", "release-too-low", "release-too-high", "integer-overflow", "packet-status"],
)
async def test_native_exceptions_become_typed_errors(
    operation: str,
    failure: Callable[[], Exception],
    expected: type[Exception],
    message: str,
) -> None:
    factory = Factory()
    client = TigerBeetleClient(_settings(), native_factory=factory)
    (fake,) = factory.built
    native_error = failure()
    fake.failures.append(native_error)
    with pytest.raises(expected, match=message) as raised:
        await operations[operation](client)
    assert raised.value.__cause__ is native_error
    assert len(factory.built) == 1, "only eviction reconnects"
    await operations[operation](client)  # The next call goes through.
    assert fake.close_calls == 0


@pytest.mark.parametrize("close_fails", [False, True], ids=["closes", "close-raises"])
async def test_an_evicted_client_is_closed_and_replaced(close_fails: bool) -> None:
    factory = Factory()
    client = TigerBeetleClient(_settings(), native_factory=factory)
    (old,) = factory.built
    old.failures.append(tb.ClientEvictedError())
    if close_fails:
        old.close_failure = tb.ClientClosedError()

    with pytest.raises(LedgerUnavailable, match="evicted"):
        await client.create_transfers(_transfers([False]))
    assert factory.arguments == [(test_cluster_id, test_addresses)] * 2
    old, new = factory.built
    assert (old.close_calls, new.close_calls) == (1, 0)

    results = await client.create_transfers(_transfers([False], first_id=2))
    assert [r.timestamp for r in results] == [2]
    assert new.accepted == [("create_transfers", [2])]
    assert old.accepted == []
    await client.close()
    assert (old.close_calls, new.close_calls) == (1, 1)


async def test_a_failed_reconnect_is_ledger_unavailable_naming_tb_addresses() -> None:
    factory = Factory()
    client = TigerBeetleClient(_settings(), native_factory=factory)
    factory.built[0].failures.append(tb.ClientEvictedError())
    factory.failure = InitError(tb.InitStatus.SYSTEM_RESOURCES)
    with pytest.raises(LedgerUnavailable, match=re.escape("TB_ADDRESSES='127.0.0.1:3000'")):
        await client.lookup_accounts([1])


async def test_calls_evicted_together_reconnect_once() -> None:
    """The native client batches concurrent calls, so an eviction fails them all at once."""
    factory = Factory()
    client = TigerBeetleClient(_settings(), native_factory=factory)
    (old,) = factory.built
    old.gate = asyncio.Event()
    old.failures += [tb.ClientEvictedError(), tb.ClientEvictedError()]
    calls = [
        asyncio.create_task(client.create_transfers(_transfers([False], first_id=i)))
        for i in (1, 2)
    ]
    await _until(lambda: old.started == 2)
    old.gate.set()
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(outcome, LedgerUnavailable) for outcome in outcomes)
    assert len(factory.built) == 2, "one eviction, one replacement client"
    assert factory.built[1].close_calls == 0, "the fresh replacement must not be closed"
    await client.close()


def test_a_factory_that_fails_is_ledger_unavailable_naming_tb_addresses() -> None:
    factory = Factory()
    factory.failure = InitError(tb.InitStatus.ADDRESS_INVALID)
    with pytest.raises(
        LedgerUnavailable, match=re.escape("TB_ADDRESSES='127.0.0.1:3000'")
    ) as raised:
        TigerBeetleClient(_settings(), native_factory=factory)
    assert isinstance(raised.value.__cause__, InitError)


# ------------------------------------------------------------------------------------------
# close().


@pytest.mark.parametrize("operation", sorted(operations))
async def test_close_closes_the_native_client_once_and_later_calls_are_unavailable(
    operation: str,
) -> None:
    fake = FakeNative()
    client = _client(fake)
    await client.close()
    await client.close()
    assert fake.close_calls == 1
    with pytest.raises(LedgerUnavailable, match="closed"):
        await operations[operation](client)
    assert fake.started == 0


# ------------------------------------------------------------------------------------------
# TigerBeetleSettings.from_environment.


def test_settings_read_an_explicit_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TB_ADDRESSES", "10.0.0.9:3000")
    monkeypatch.setenv("KOVRA_LEDGER_TIMEOUT_MS", "5")
    found = TigerBeetleSettings.from_environment(
        {"TB_ADDRESSES": "  3000,3001 \n", "TB_CLUSTER_ID": " 42 "}
    )
    assert (found.addresses, found.cluster_id, found.timeout_ms) == (
        "3000,3001",
        42,
        timeout_ms_default,
    )
    assert timeout_ms_default == 10_000
    with pytest.raises(ValueError, match="TB_ADDRESSES"):
        TigerBeetleSettings.from_environment({})


@pytest.mark.parametrize("addresses", ["", "   ", "\n\t"])
def test_settings_require_tb_addresses(addresses: str) -> None:
    with pytest.raises(ValueError, match="TB_ADDRESSES"):
        TigerBeetleSettings.from_environment({"TB_ADDRESSES": addresses})


@pytest.mark.parametrize(
    ("raw", "expected"), [(None, 0), ("", 0), ("0", 0), (str((1 << 128) - 1), (1 << 128) - 1)]
)
def test_settings_parse_tb_cluster_id(raw: str | None, expected: int) -> None:
    environ = {"TB_ADDRESSES": "3000"}
    if raw is not None:
        environ["TB_CLUSTER_ID"] = raw
    assert TigerBeetleSettings.from_environment(environ).cluster_id == expected


@pytest.mark.parametrize("raw", ["abc", "1.5", "0x10", "-1", str(1 << 128)])
def test_settings_reject_a_bad_tb_cluster_id(raw: str) -> None:
    with pytest.raises(ValueError, match="TB_CLUSTER_ID"):
        TigerBeetleSettings.from_environment({"TB_ADDRESSES": "3000", "TB_CLUSTER_ID": raw})


@pytest.mark.parametrize(("raw", "expected"), [("1", 1), ("250", 250), ("600000", 600_000)])
def test_settings_parse_the_ledger_timeout(raw: str, expected: int) -> None:
    environ = {"TB_ADDRESSES": "3000", "KOVRA_LEDGER_TIMEOUT_MS": raw}
    assert TigerBeetleSettings.from_environment(environ).timeout_ms == expected
    assert timeout_ms_max == 600_000


@pytest.mark.parametrize("raw", ["0", "-5", "600001", "soon", "1.5"])
def test_settings_reject_a_bad_ledger_timeout(raw: str) -> None:
    with pytest.raises(ValueError, match="KOVRA_LEDGER_TIMEOUT_MS"):
        TigerBeetleSettings.from_environment(
            {"TB_ADDRESSES": "3000", "KOVRA_LEDGER_TIMEOUT_MS": raw}
        )
