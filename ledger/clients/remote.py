"""`RemoteLedgerClient`: the `LedgerClient` of a process whose ledger is the shared server.

It exists because the embedded engine is single-process while the gateway runs several
workers: `ledger.remote.server` owns the engine, and every gateway or worker process talks to
it through this client, with TigerBeetle's own types, statuses and exceptions, so the rest of
Kovra cannot tell it from `EmbeddedClient` or a real cluster.

- One connection per client, opened lazily and shared by every concurrent call: requests are
  pipelined (up to `in_flight_max` in flight) and matched to replies by request id, and the
  server batches them with everyone else's.
- Fields are validated here exactly as the embedded engine (and the native client) validates
  them, so `IntegerOverflowError` and `TooMuchDataError` are raised before anything is sent.
  Creates are validated by packing them: `struct` refuses exactly the values the range
  checks refuse, at a fraction of their cost, and only then do the checks run, to name the
  field.
- Every wait is bounded by `timeout_ms`: a call that gets no answer raises `LedgerUnavailable`;
  its outcome is unknown and retrying it with the same ids is safe. A broken connection fails
  the calls in flight the same way, and the next call opens a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import struct
from collections.abc import Callable, Mapping
from typing import TypeVar

import tigerbeetle as tb

from ledger.clients.base import (
    batch_size_max,
    timeout_environment_variable,
    timeout_ms_default,
    timeout_ms_max,
)
from ledger.clients.codec import (
    Fields,
    account_fields,
    account_filter_fields,
    pack_accounts,
    pack_transfers,
    query_filter_fields,
    transfer_fields,
    validate,
    validate_ids,
)
from ledger.errors import LedgerUnavailable
from ledger.invariants import unreachable
from ledger.remote.protocol import (
    LedgerAddress,
    Operation,
    ProtocolError,
    ReplyHeader,
    RequestHeader,
    address_environment_variable,
    decode_balances,
    decode_create_account_results,
    decode_create_transfer_results,
    encode_account_filter,
    encode_frame,
    encode_ids,
    encode_query_filter,
    format_address,
    in_flight_max,
    open_stream,
    parse_address,
    raise_for_reply,
    read_frame,
    reply_decoder,
    unpack_accounts,
    unpack_transfers,
)

_outcome_unknown = "the outcome is unknown, retry with the same ids"

Reply = tuple[ReplyHeader, bytes]
EventT = TypeVar("EventT", tb.Account, tb.Transfer)


def _packed(
    pack: Callable[[list[EventT]], bytes],
    events: list[EventT],
    fields: Fields,
) -> bytes:
    """`events` in TigerBeetle's layout, or the `IntegerOverflowError` naming the first field
    out of range, as `validate` words it."""
    try:
        return pack(events)
    except struct.error:
        for event in events:
            validate(event, fields)
        unreachable("struct refused an event that every range check accepts")


class _Connection:
    """One socket to the server: writes frames, and a reader task that routes replies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._pending: dict[int, asyncio.Future[Reply]] = {}
        self._open = True
        self._reader_task = asyncio.create_task(self._read_replies())

    @classmethod
    async def open(cls, address: LedgerAddress, timeout_s: float) -> _Connection:
        try:
            async with asyncio.timeout(timeout_s):
                reader, writer = await open_stream(address)
        except OSError as error:  # Refused, unreachable, or TimeoutError.
            reason = str(error) or type(error).__name__
            raise LedgerUnavailable(
                f"cannot connect to the ledger server at {format_address(address)}: {reason}"
            ) from error
        return cls(reader, writer)

    @property
    def is_open(self) -> bool:
        return self._open

    async def request(self, request_id: int, operation: Operation, payload: bytes) -> Reply:
        if not self._open:
            raise LedgerUnavailable("the connection to the ledger server is closed")
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            self._writer.write(
                encode_frame(RequestHeader(request_id=request_id, operation=operation), payload)
            )
            await self._writer.drain()
            return await future
        except ConnectionError as error:
            raise LedgerUnavailable(
                f"the connection to the ledger server failed ({error!r}); {_outcome_unknown}"
            ) from error
        finally:
            self._pending.pop(request_id, None)
            if future.done() and not future.cancelled():
                future.exception()  # Already raised or returned; never "never retrieved".

    async def _read_replies(self) -> None:
        reason = "the ledger server closed the connection"
        try:
            while True:
                header, payload = await read_frame(self._reader, reply_decoder)
                future = self._pending.pop(header.request_id, None)
                if future is not None and not future.done():
                    future.set_result((header, payload))
        except asyncio.IncompleteReadError:
            pass
        except asyncio.CancelledError:
            reason = "the ledger client was closed"
            raise
        except (OSError, ProtocolError) as error:
            reason = f"the connection to the ledger server failed ({error!r})"
        finally:
            self._shut(reason)

    def _shut(self, reason: str) -> None:
        self._open = False
        self._writer.close()
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(LedgerUnavailable(f"{reason}; {_outcome_unknown}"))

    async def close(self) -> None:
        self._reader_task.cancel()
        await asyncio.wait({self._reader_task})
        with contextlib.suppress(ConnectionError):  # The peer went first; closed either way.
            await self._writer.wait_closed()


class RemoteLedgerClient:
    """Kovra's `LedgerClient` over the shared embedded ledger server at `address`."""

    def __init__(self, address: str, *, timeout_ms: int = timeout_ms_default) -> None:
        if not 0 < timeout_ms <= timeout_ms_max:
            raise ValueError(f"{timeout_environment_variable} must be in 1..{timeout_ms_max}")
        self._address = parse_address(address)
        self._timeout_ms = timeout_ms
        self._slots = asyncio.Semaphore(in_flight_max)
        self._request_ids = itertools.count(1)
        self._connection: _Connection | None = None
        self._connecting: asyncio.Task[_Connection] | None = None
        self._closed = False

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> RemoteLedgerClient:
        """`KOVRA_LEDGER_ADDRESS` (required) and `KOVRA_LEDGER_TIMEOUT_MS`, validated."""
        source = os.environ if environ is None else environ
        address = source.get(address_environment_variable, "").strip()
        if not address:
            raise ValueError(f"{address_environment_variable} is not set")
        raw_timeout = source.get(timeout_environment_variable, "").strip()
        try:
            timeout_ms = int(raw_timeout) if raw_timeout else timeout_ms_default
        except ValueError:
            raise ValueError(
                f"{timeout_environment_variable} must be an integer, got {raw_timeout!r}"
            ) from None
        return cls(address, timeout_ms=timeout_ms)

    @property
    def address(self) -> str:
        return format_address(self._address)

    # ----------------------------------------------------------------------------------
    # The `LedgerClient` interface.

    async def create_accounts(self, accounts: list[tb.Account]) -> list[tb.CreateAccountResult]:
        self._check(len(accounts))
        packed = _packed(pack_accounts, accounts, account_fields)
        payload = await self._call(Operation.CREATE_ACCOUNTS, packed)
        return decode_create_account_results(payload)

    async def create_transfers(self, transfers: list[tb.Transfer]) -> list[tb.CreateTransferResult]:
        self._check(len(transfers))
        packed = _packed(pack_transfers, transfers, transfer_fields)
        payload = await self._call(Operation.CREATE_TRANSFERS, packed)
        return decode_create_transfer_results(payload)

    async def lookup_accounts(self, accounts: list[int]) -> list[tb.Account]:
        self._check(len(accounts))
        validate_ids(accounts)
        return unpack_accounts(await self._call(Operation.LOOKUP_ACCOUNTS, encode_ids(accounts)))

    async def lookup_transfers(self, transfers: list[int]) -> list[tb.Transfer]:
        self._check(len(transfers))
        validate_ids(transfers)
        payload = await self._call(Operation.LOOKUP_TRANSFERS, encode_ids(transfers))
        return unpack_transfers(payload)

    async def get_account_transfers(self, filter: tb.AccountFilter) -> list[tb.Transfer]:  # noqa: A002
        self._check(filter.limit)
        validate(filter, account_filter_fields)
        payload = await self._call(Operation.GET_ACCOUNT_TRANSFERS, encode_account_filter(filter))
        return unpack_transfers(payload)

    async def get_account_balances(
        self,
        filter: tb.AccountFilter,  # noqa: A002
    ) -> list[tb.AccountBalance]:
        self._check(filter.limit)
        validate(filter, account_filter_fields)
        payload = await self._call(Operation.GET_ACCOUNT_BALANCES, encode_account_filter(filter))
        return decode_balances(payload)

    async def query_accounts(self, query_filter: tb.QueryFilter) -> list[tb.Account]:
        self._check(query_filter.limit)
        validate(query_filter, query_filter_fields)
        payload = await self._call(Operation.QUERY_ACCOUNTS, encode_query_filter(query_filter))
        return unpack_accounts(payload)

    async def query_transfers(self, query_filter: tb.QueryFilter) -> list[tb.Transfer]:
        self._check(query_filter.limit)
        validate(query_filter, query_filter_fields)
        payload = await self._call(Operation.QUERY_TRANSFERS, encode_query_filter(query_filter))
        return unpack_transfers(payload)

    async def close(self) -> None:
        """Fail calls in flight with `LedgerUnavailable` and close the connection."""
        if self._closed:
            return
        self._closed = True
        if self._connecting is not None:
            await asyncio.wait({self._connecting})  # Bounded by the connect timeout.
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    # ----------------------------------------------------------------------------------
    # One bounded call over the shared connection.

    def _check(self, count: int) -> None:
        if self._closed:
            raise LedgerUnavailable("the ledger client is closed")
        if count > batch_size_max:
            raise tb.TooMuchDataError()

    async def _call(self, operation: Operation, payload: bytes) -> bytes:
        try:
            async with asyncio.timeout(self._timeout_ms / 1000), self._slots:
                connection = await self._live_connection()
                header, reply = await connection.request(
                    next(self._request_ids), operation, payload
                )
        except TimeoutError:
            raise LedgerUnavailable(
                f"the ledger server at {self.address} did not answer within "
                f"{self._timeout_ms} ms; {_outcome_unknown}"
            ) from None
        raise_for_reply(header)
        return reply

    async def _live_connection(self) -> _Connection:
        """The open connection, or one new attempt to open it shared by all callers."""
        if self._closed:
            raise LedgerUnavailable("the ledger client is closed")
        connection = self._connection
        if connection is not None and connection.is_open:
            return connection
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.create_task(self._connect())
        try:
            # Shielded: one caller timing out must not cancel the attempt the others share.
            return await asyncio.shield(self._connecting)
        except LedgerUnavailable as error:
            raise LedgerUnavailable(error.detail) from None  # One exception per caller.

    async def _connect(self) -> _Connection:
        connection = await _Connection.open(self._address, self._timeout_ms / 1000)
        self._connection = connection
        return connection
