"""The adapter over the real `tigerbeetle.ClientAsync` (one per process, shared by all).

The native client already batches concurrent calls into one request, so the adapter keeps a
single instance and adds what the native client leaves to its user:

- Requests above the batch maximum are chunked, never splitting a linked chain; when the
  cluster accepts smaller requests than that (a `--development` replica takes 32 KiB unless
  started with `--limit-request`), `TooMuchDataError` makes the adapter split and remember
  the smaller size instead of failing. The native client raises it before sending anything,
  so the split is safe.
- The native client never times out, and cancelling an in-flight call breaks its
  bookkeeping. Waits are bounded with `asyncio.wait`, which leaves the call running; the
  caller gets `LedgerUnavailable` and the outcome is unknown, so it retries with the same
  deterministic ids.
- Every exception the client raises becomes a typed error: operating failures
  (`LedgerUnavailable`) or programmer errors (`InvariantViolation`).
- Creates are packed by Kovra (`PackedClientAsync`). `tigerbeetle.ClientAsync` turns every
  `Transfer` into a `CTransfer` field by field: twelve range checks and six `c_uint128`
  objects, about 5 µs a transfer, so 15 µs for a payout's three legs, all of it on the
  gateway's event loop. The bytes it builds are TigerBeetle's own 128-byte layout, which
  `ledger.clients.codec` packs with one `struct` call per event, ten times faster. A value
  out of its field's range raises `tb.IntegerOverflowError`, as the library's own packing
  does. Everything else (the packet, its submission and completion, the decoding of results)
  stays the library's.

The library offers no public way to hand it packed events, so `PackedClientAsync` overrides
its private `_acquire_packet`, of the version pinned in `uv.lock`. An upgrade that changed it
would fail `tests/ledger/clients/test_tigerbeetle_packing.py`, which reads the bytes back
through the packet, before it could reach a cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import struct
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, TypeVar

import tigerbeetle as tb
from tigerbeetle import bindings
from tigerbeetle.client import InflightPacket

from ledger.clients.base import (
    LedgerClient,
    batch_size_max,
    timeout_environment_variable,
    timeout_ms_default,
    timeout_ms_max,
)
from ledger.clients.codec import event_size, pack_accounts, pack_transfers
from ledger.errors import LedgerUnavailable
from ledger.invariants import InvariantViolation, ensure

EventT = TypeVar("EventT", tb.Account, tb.Transfer)
ResultT = TypeVar("ResultT")
ItemT = TypeVar("ItemT")


# ------------------------------------------------------------------------------------------
# The native client, with creates packed by `ledger.clients.codec`.

# The native client has the `LedgerClient` interface itself (that interface is its subset).
NativeClient = LedgerClient
NativeClientFactory = Callable[[int, str], NativeClient]

# The event types `PackedClientAsync` packs, and how. Any other operation (lookups, queries)
# goes through the library's packing unchanged: those carry ids or one filter, not batches.
_packers: Final[dict[type[ctypes.Structure], Callable[[list[Any]], bytes]]] = {
    bindings.CTransfer: pack_transfers,
    bindings.CAccount: pack_accounts,
}
ensure(
    all(ctypes.sizeof(event_type) == event_size for event_type in _packers),
    "the library's events are TigerBeetle's 128-byte layout",
)


def packed_events(events: list[Any], event_type: type[ctypes.Structure]) -> ctypes.Array[Any]:
    """`events` as a ctypes array of `event_type`, over one buffer packed by `struct`."""
    try:
        payload = bytearray(_packers[event_type](events))
    except struct.error as error:
        # `struct` refuses a negative value or one too wide for its field, as the library
        # does, but cannot name the field: the message says which kind of event it was.
        raise tb.IntegerOverflowError(
            f"a {event_type.__name__} field is out of range: {error}"
        ) from None
    ensure(len(payload) == event_size * len(events), "one 128-byte record per event")
    return (event_type * len(events)).from_buffer(payload)


class PackedClientAsync(tb.ClientAsync):
    """`tb.ClientAsync` whose creates carry events packed by `packed_events`."""

    def _acquire_packet(
        self,
        operation: bindings.Operation,
        operations: Any,
        c_event_type: Any,
        c_result_type: Any,
    ) -> InflightPacket:
        if c_event_type not in _packers:
            return super()._acquire_packet(operation, operations, c_event_type, c_result_type)
        events = packed_events(list(operations), c_event_type)
        # The library fills in the packet (its user data, operation and status) for an empty
        # batch; only the data is replaced. Casting keeps `events`, and through it the
        # buffer, referenced by the packet for as long as the packet lives, exactly as the
        # library's own array is kept.
        inflight = super()._acquire_packet(operation, [], c_event_type, c_result_type)
        inflight.packet.data_size = ctypes.sizeof(events)
        inflight.packet.data = ctypes.cast(events, ctypes.c_void_p)
        return inflight


def _native_client(cluster_id: int, addresses: str) -> NativeClient:
    return PackedClientAsync(cluster_id=cluster_id, replica_addresses=addresses)


# ------------------------------------------------------------------------------------------
# The adapter.


class TigerBeetleSettings:
    """`TB_ADDRESSES`, `TB_CLUSTER_ID` and `KOVRA_LEDGER_TIMEOUT_MS`, validated."""

    def __init__(self, *, addresses: str, cluster_id: int, timeout_ms: int) -> None:
        if not addresses.strip():
            raise ValueError("TB_ADDRESSES must name at least one replica address")
        if not 0 <= cluster_id < (1 << 128):
            raise ValueError(f"TB_CLUSTER_ID must be a u128, got {cluster_id}")
        if not 0 < timeout_ms <= timeout_ms_max:
            raise ValueError(f"{timeout_environment_variable} must be in 1..{timeout_ms_max}")
        self.addresses = addresses.strip()
        self.cluster_id = cluster_id
        self.timeout_ms = timeout_ms

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> TigerBeetleSettings:
        source = os.environ if environ is None else environ
        return cls(
            addresses=source.get("TB_ADDRESSES", ""),
            cluster_id=_parse_int(source, "TB_CLUSTER_ID", 0),
            timeout_ms=_parse_int(source, timeout_environment_variable, timeout_ms_default),
        )


def _parse_int(source: Mapping[str, str], name: str, default: int) -> int:
    raw = source.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


def split_chains(events: Sequence[EventT], linked_flag: int) -> list[list[EventT]]:
    """Cut a batch into linked chains (a lone event is a chain of one), keeping order."""
    chains: list[list[EventT]] = []
    current: list[EventT] = []
    for event in events:
        current.append(event)
        if not int(event.flags) & linked_flag:
            chains.append(current)
            current = []
    if current:
        chains.append(current)  # An open chain: TigerBeetle answers linked_event_chain_open.
    return chains


def pack_chunks(chains: list[list[EventT]], size_limit: int) -> list[list[EventT]]:
    """Pack whole chains into requests of at most `size_limit` events where they fit."""
    chunks: list[list[EventT]] = []
    current: list[EventT] = []
    for chain in chains:
        if current and len(current) + len(chain) > size_limit:
            chunks.append(current)
            current = []
        current.extend(chain)
    if current:
        chunks.append(current)
    return chunks


def _bind(
    call: Callable[[NativeClient, list[ItemT]], Awaitable[list[ResultT]]], chunk: list[ItemT]
) -> Callable[[NativeClient], Awaitable[list[ResultT]]]:
    return lambda native: call(native, chunk)


class TigerBeetleClient:
    """Kovra's `LedgerClient` over a real TigerBeetle cluster."""

    def __init__(
        self, settings: TigerBeetleSettings, *, native_factory: NativeClientFactory = _native_client
    ) -> None:
        self._settings = settings
        self._native_factory = native_factory
        self._native = self._connect()
        self._request_size_limit = batch_size_max
        self._lookup_size_limit = batch_size_max
        self._closed = False
        self._abandoned: set[asyncio.Future[Any]] = set()

    def _connect(self) -> NativeClient:
        try:
            return self._native_factory(self._settings.cluster_id, self._settings.addresses)
        except Exception as error:  # The native client raises a bare InitError.
            raise LedgerUnavailable(
                f"cannot start the TigerBeetle client for TB_ADDRESSES="
                f"{self._settings.addresses!r}: {error!r}"
            ) from error

    @property
    def request_size_limit(self) -> int:
        """The size requests are packed to: the batch maximum until the cluster refuses it
        (TooMuchData), then half the refused size, and so on. Chains are never split, so a
        request may still exceed it when one chain does."""
        return self._request_size_limit

    # ----------------------------------------------------------------------------------
    # Creates: chunked by whole chains, split further when the cluster says TooMuchData.

    async def create_accounts(self, accounts: list[tb.Account]) -> list[tb.CreateAccountResult]:
        return await self._create(
            accounts, int(tb.AccountFlags.LINKED), lambda n, chunk: n.create_accounts(chunk)
        )

    async def create_transfers(self, transfers: list[tb.Transfer]) -> list[tb.CreateTransferResult]:
        return await self._create(
            transfers, int(tb.TransferFlags.LINKED), lambda n, chunk: n.create_transfers(chunk)
        )

    async def _create(
        self,
        events: list[EventT],
        linked_flag: int,
        call: Callable[[NativeClient, list[EventT]], Awaitable[list[ResultT]]],
    ) -> list[ResultT]:
        self._check_open()
        results: list[ResultT] = []
        pending = pack_chunks(split_chains(events, linked_flag), self._request_size_limit)
        pending.reverse()
        while pending:
            chunk = pending.pop()
            try:
                chunk_results = await self._call(_bind(call, chunk))
            except tb.TooMuchDataError:
                chains = split_chains(chunk, linked_flag)
                if len(chains) == 1:
                    raise InvariantViolation(
                        f"a linked chain of {len(chunk)} events does not fit one request"
                    ) from None
                # With two or more chains and a limit below the chunk's size, packing yields
                # at least two smaller requests, so every split makes progress.
                self._request_size_limit = max(1, min(self._request_size_limit, len(chunk) // 2))
                pending.extend(reversed(pack_chunks(chains, self._request_size_limit)))
                continue
            ensure(len(chunk_results) == len(chunk), "one result per event since 0.17")
            results.extend(chunk_results)
        return results

    # ----------------------------------------------------------------------------------
    # Lookups and queries.

    async def lookup_accounts(self, accounts: list[int]) -> list[tb.Account]:
        return await self._lookup(accounts, lambda n, ids: n.lookup_accounts(ids))

    async def lookup_transfers(self, transfers: list[int]) -> list[tb.Transfer]:
        return await self._lookup(transfers, lambda n, ids: n.lookup_transfers(ids))

    async def _lookup(
        self, ids: list[int], call: Callable[[NativeClient, list[int]], Awaitable[list[ResultT]]]
    ) -> list[ResultT]:
        self._check_open()
        results: list[ResultT] = []
        pending = [
            ids[start : start + self._lookup_size_limit]
            for start in range(0, len(ids), self._lookup_size_limit)
        ]
        pending.reverse()
        while pending:
            chunk = pending.pop()
            try:
                results.extend(await self._call(_bind(call, chunk)))
            except tb.TooMuchDataError:
                if len(chunk) <= 1:
                    raise InvariantViolation(
                        "a lookup of one id does not fit one request"
                    ) from None
                half = len(chunk) // 2
                self._lookup_size_limit = max(1, min(self._lookup_size_limit, half))
                pending.extend([chunk[half:], chunk[:half]])
        return results

    async def get_account_transfers(self, filter: tb.AccountFilter) -> list[tb.Transfer]:  # noqa: A002
        self._check_limit(filter.limit)
        return await self._call(lambda native: native.get_account_transfers(filter))

    async def get_account_balances(
        self,
        filter: tb.AccountFilter,  # noqa: A002
    ) -> list[tb.AccountBalance]:
        self._check_limit(filter.limit)
        return await self._call(lambda native: native.get_account_balances(filter))

    async def query_accounts(self, query_filter: tb.QueryFilter) -> list[tb.Account]:
        self._check_limit(query_filter.limit)
        return await self._call(lambda native: native.query_accounts(query_filter))

    async def query_transfers(self, query_filter: tb.QueryFilter) -> list[tb.Transfer]:
        self._check_limit(query_filter.limit)
        return await self._call(lambda native: native.query_transfers(query_filter))

    @staticmethod
    def _check_limit(limit: int) -> None:
        if limit > batch_size_max:
            raise InvariantViolation(f"query limit {limit} exceeds {batch_size_max}; page instead")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._abandoned:
            # The native client must not close under calls still in flight: give abandoned
            # calls one more timeout to finish.
            await asyncio.wait(set(self._abandoned), timeout=self._settings.timeout_ms / 1000)
        await self._native.close()

    # ----------------------------------------------------------------------------------
    # One bounded call, with every native exception translated.

    def _check_open(self) -> None:
        if self._closed:
            raise LedgerUnavailable("the ledger client is closed")

    async def _call(self, call: Callable[[NativeClient], Awaitable[ResultT]]) -> ResultT:
        self._check_open()
        native = self._native
        future = asyncio.ensure_future(call(native))
        timeout_s = self._settings.timeout_ms / 1000
        # asyncio.wait never cancels `future`: cancelling a native call corrupts its state.
        # If our caller is cancelled instead, the call runs on and its outcome is absorbed.
        try:
            done, _ = await asyncio.wait({future}, timeout=timeout_s)
        except asyncio.CancelledError:
            self._abandon(future)
            raise
        if not done:
            self._abandon(future)
            raise LedgerUnavailable(
                f"TigerBeetle did not answer within {self._settings.timeout_ms} ms; "
                "the outcome is unknown, retry with the same ids"
            )
        try:
            return future.result()
        except tb.TooMuchDataError:
            raise
        except tb.ClientClosedError as error:
            raise LedgerUnavailable("the TigerBeetle client was closed") from error
        except tb.ClientEvictedError as error:
            await self._reconnect(evicted=native)
            raise LedgerUnavailable("the cluster evicted this client; reconnected") from error
        except tb.ClientReleaseTooLowError as error:
            raise LedgerUnavailable("the cluster requires a newer tigerbeetle client") from error
        except tb.ClientReleaseTooHighError as error:
            raise LedgerUnavailable("the cluster is older than the tigerbeetle client") from error
        except tb.IntegerOverflowError as error:
            raise InvariantViolation(f"a ledger field is out of range: {error}") from error
        except Exception as error:  # INVALID_OPERATION / INVALID_DATA_SIZE: a client bug.
            raise InvariantViolation(f"unexpected TigerBeetle client failure: {error!r}") from error

    def _abandon(self, future: asyncio.Future[Any]) -> None:
        """Keep a timed-out call referenced until it ends, and swallow its late outcome."""
        self._abandoned.add(future)

        def forget(done: asyncio.Future[Any]) -> None:
            self._abandoned.discard(done)
            if not done.cancelled():
                done.exception()

        future.add_done_callback(forget)

    async def _reconnect(self, *, evicted: NativeClient) -> None:
        """Replace `evicted` once, however many of its calls failed together."""
        if self._native is not evicted:
            return
        self._native = self._connect()
        # The evicted client is unusable either way; closing it only frees its resources.
        with contextlib.suppress(Exception):
            await evicted.close()
