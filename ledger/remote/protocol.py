"""The wire protocol between `RemoteLedgerClient` and the shared embedded ledger server.

It exists because the embedded engine lives in one process while the gateway runs several:
the server owns the engine and every other process reaches it over a local socket. Nothing
here knows about sockets beyond reading and writing frames; the client and the server share
these codecs so that both ends agree byte for byte.

A frame is `u32 length` (of everything after it), `u16 header length`, a msgpack header
(`RequestHeader` or `ReplyHeader`) and a binary payload. u128 values do not fit msgpack
integers, so payloads use TigerBeetle's own 128-byte layouts for accounts and transfers
(`ledger.clients.codec`), 16-byte little-endian ids, and fixed structs for filters and results.
Frames above `frame_size_max` are refused on both ends.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import struct
from collections.abc import Callable
from typing import Generic, TypeVar

import msgspec
import tigerbeetle as tb

from ledger.clients import codec
from ledger.clients.base import batch_size_max
from ledger.clients.codec import Fields, event_size, join_u128, split_u128
from ledger.errors import LedgerUnavailable
from ledger.invariants import InvariantViolation, ensure

# The largest frame either end sends or accepts. The largest legal message is a batch of
# `batch_size_max` 128-byte events (just under 1 MiB) plus a small header.
frame_size_max = 2 * 1024 * 1024
# Requests one connection may have in flight; the client waits for a slot, the server stops
# reading the connection until one is answered.
in_flight_max = 1024
# Error messages carried in a reply header are cut to this many characters.
message_length_max = 1_000
# StreamReader buffer limit: one whole frame, so large frames do not pause the transport.
stream_limit = frame_size_max
id_size = 16
address_environment_variable = "KOVRA_LEDGER_ADDRESS"

_length_prefix = struct.Struct("<I")
_header_length = struct.Struct("<H")
# The filters' fields in the order of `codec.account_filter_fields` and
# `codec.query_filter_fields` (a u128 as low, high), with two bytes of padding after `code`.
_account_filter_layout = struct.Struct("<QQQQQIH2xQQII")
_query_filter_layout = struct.Struct("<QQQIIH2xQQII")
# timestamp, status.
_create_result = struct.Struct("<QI4x")
# debits_pending, debits_posted, credits_pending, credits_posted (u128 each), timestamp.
_account_balance = struct.Struct("<QQQQQQQQQ")
ensure(frame_size_max >= batch_size_max * event_size + 4096, "a full batch fits one frame")


class ProtocolError(Exception):
    """A frame or payload that does not follow this protocol: the peer is broken."""


# ------------------------------------------------------------------------------------------
# Addresses: `HOST:PORT` or `unix:PATH`.


class TcpAddress(msgspec.Struct, frozen=True, kw_only=True):
    host: str
    port: int


class UnixAddress(msgspec.Struct, frozen=True, kw_only=True):
    path: str


LedgerAddress = TcpAddress | UnixAddress


def parse_address(text: str) -> LedgerAddress:
    """`127.0.0.1:3300`, `[::1]:3300`, `localhost:3300` or `unix:/path/to/socket`."""
    value = text.strip()
    if value.startswith("unix:"):
        path = value.removeprefix("unix:")
        if not path:
            raise ValueError(f"{address_environment_variable}: `unix:` needs a socket path")
        return UnixAddress(path=path)
    host, separator, port_text = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not separator or not host or not port_text.isdigit():
        raise ValueError(
            f"{address_environment_variable} must be HOST:PORT or unix:PATH, got {text!r}"
        )
    port = int(port_text)
    if port > 65_535:
        raise ValueError(f"{address_environment_variable}: port {port} is not a TCP port")
    return TcpAddress(host=host, port=port)


def format_address(address: LedgerAddress) -> str:
    match address:
        case UnixAddress(path=path):
            return f"unix:{path}"
        case TcpAddress(host=host, port=port):
            return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def open_stream(address: LedgerAddress) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    match address:
        case UnixAddress(path=path):
            return await asyncio.open_unix_connection(path, limit=stream_limit)
        case TcpAddress(host=host, port=port):
            return await asyncio.open_connection(host, port, limit=stream_limit)


# ------------------------------------------------------------------------------------------
# Headers and frames.


class Operation(enum.IntEnum):
    CREATE_ACCOUNTS = 1
    CREATE_TRANSFERS = 2
    LOOKUP_ACCOUNTS = 3
    LOOKUP_TRANSFERS = 4
    GET_ACCOUNT_TRANSFERS = 5
    GET_ACCOUNT_BALANCES = 6
    QUERY_ACCOUNTS = 7
    QUERY_TRANSFERS = 8


class ReplyStatus(enum.IntEnum):
    OK = 0
    TOO_MUCH_DATA = 1  # tb.TooMuchDataError
    INTEGER_OVERFLOW = 2  # tb.IntegerOverflowError
    UNAVAILABLE = 3  # The engine is closed or failed: LedgerUnavailable, outcome unknown.
    INVALID_REQUEST = 4  # The request broke the protocol: a client bug.
    INVARIANT_VIOLATION = 5  # The engine failed an invariant: a server bug.


class RequestHeader(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    request_id: int
    operation: Operation


class ReplyHeader(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    request_id: int
    status: ReplyStatus
    message: str = ""


HeaderT = TypeVar("HeaderT", RequestHeader, ReplyHeader)
_encoder = msgspec.msgpack.Encoder()
request_decoder = msgspec.msgpack.Decoder(RequestHeader)
reply_decoder = msgspec.msgpack.Decoder(ReplyHeader)


def encode_frame(header: RequestHeader | ReplyHeader, payload: bytes) -> bytes:
    header_bytes = _encoder.encode(header)
    length = _header_length.size + len(header_bytes) + len(payload)
    ensure(length <= frame_size_max, f"a frame of {length} bytes exceeds {frame_size_max}")
    return (
        _length_prefix.pack(length)
        + _header_length.pack(len(header_bytes))
        + header_bytes
        + payload
    )


async def read_frame(
    reader: asyncio.StreamReader, decoder: msgspec.msgpack.Decoder[HeaderT]
) -> tuple[HeaderT, bytes]:
    """The next frame; `IncompleteReadError` at the end of the stream, `ProtocolError` for a
    frame that is too large or malformed (the stream can then not be trusted further)."""
    (length,) = _length_prefix.unpack(await reader.readexactly(_length_prefix.size))
    if length > frame_size_max:
        raise ProtocolError(f"a frame of {length} bytes exceeds the maximum of {frame_size_max}")
    if length < _header_length.size:
        raise ProtocolError(f"a frame of {length} bytes cannot hold a header")
    body = await reader.readexactly(length)
    (header_length,) = _header_length.unpack_from(body)
    header_end = _header_length.size + header_length
    if header_end > length:
        raise ProtocolError(f"a header of {header_length} bytes overruns its frame")
    try:
        header = decoder.decode(body[_header_length.size : header_end])
    except msgspec.DecodeError as error:
        raise ProtocolError(f"undecodable frame header: {error}") from error
    return header, body[header_end:]


# ------------------------------------------------------------------------------------------
# Payloads.


def _check_size(payload: bytes, size: int, what: str) -> None:
    if len(payload) % size:
        raise ProtocolError(f"{what}: {len(payload)} bytes is not a multiple of {size}")
    if len(payload) // size > batch_size_max:
        raise tb.TooMuchDataError()


def encode_ids(ids: list[int]) -> bytes:
    return b"".join(number.to_bytes(id_size, "little") for number in ids)


def decode_ids(payload: bytes) -> list[int]:
    _check_size(payload, id_size, "ids")
    return [
        int.from_bytes(payload[offset : offset + id_size], "little")
        for offset in range(0, len(payload), id_size)
    ]


def unpack_accounts(payload: bytes) -> list[tb.Account]:
    _check_size(payload, event_size, "accounts")
    return codec.unpack_accounts(payload)


def unpack_transfers(payload: bytes) -> list[tb.Transfer]:
    _check_size(payload, event_size, "transfers")
    return codec.unpack_transfers(payload)


FilterT = TypeVar("FilterT", tb.AccountFilter, tb.QueryFilter)


class _FilterCodec(Generic[FilterT]):
    """One kind of filter in its fixed struct, field by field as `fields` lists them."""

    def __init__(
        self,
        build: Callable[..., FilterT],
        fields: Fields,
        layout: struct.Struct,
        flags: Callable[[int], int],
        what: str,
    ) -> None:
        words = len(fields) + sum(1 for _, bits in fields if bits == 128)
        ensure(len(layout.unpack(bytes(layout.size))) == words, "one word per field, two per u128")
        self._build: Callable[..., FilterT] = build
        self._fields = fields
        self._layout = layout
        self._flags = flags
        self._what = what

    def encode(self, value: FilterT) -> bytes:
        words: list[int] = []
        for name, bits in self._fields:
            number = int(getattr(value, name))
            if bits == 128:
                words.extend(split_u128(number))
            else:
                words.append(number)
        return self._layout.pack(*words)

    def decode(self, payload: bytes) -> FilterT:
        words = iter(_unpack_one(self._layout, payload, self._what))
        values = {
            name: join_u128(next(words), next(words)) if bits == 128 else next(words)
            for name, bits in self._fields
        }
        values["flags"] = self._flags(values["flags"])
        return self._build(**values)


_account_filter = _FilterCodec(
    tb.AccountFilter,
    codec.account_filter_fields,
    _account_filter_layout,
    tb.AccountFilterFlags,
    "account filter",
)
_query_filter = _FilterCodec(
    tb.QueryFilter,
    codec.query_filter_fields,
    _query_filter_layout,
    tb.QueryFilterFlags,
    "query filter",
)
encode_account_filter = _account_filter.encode
decode_account_filter = _account_filter.decode
encode_query_filter = _query_filter.encode
decode_query_filter = _query_filter.decode


def _unpack_one(layout: struct.Struct, payload: bytes, what: str) -> tuple[int, ...]:
    if len(payload) != layout.size:
        raise ProtocolError(f"{what}: {len(payload)} bytes, expected {layout.size}")
    return layout.unpack(payload)


def encode_create_results(
    results: list[tb.CreateAccountResult] | list[tb.CreateTransferResult],
) -> bytes:
    return b"".join(_create_result.pack(r.timestamp, int(r.status)) for r in results)


def decode_create_account_results(payload: bytes) -> list[tb.CreateAccountResult]:
    return _decode_create_results(
        payload,
        lambda timestamp, status: tb.CreateAccountResult(
            timestamp=timestamp, status=tb.CreateAccountStatus(status)
        ),
    )


def decode_create_transfer_results(payload: bytes) -> list[tb.CreateTransferResult]:
    return _decode_create_results(
        payload,
        lambda timestamp, status: tb.CreateTransferResult(
            timestamp=timestamp, status=tb.CreateTransferStatus(status)
        ),
    )


ResultT = TypeVar("ResultT")


def _decode_create_results(payload: bytes, build: Callable[[int, int], ResultT]) -> list[ResultT]:
    _check_size(payload, _create_result.size, "create results")
    try:
        return [
            build(timestamp, status) for timestamp, status in _create_result.iter_unpack(payload)
        ]
    except ValueError as error:  # A status this tigerbeetle package does not know.
        raise ProtocolError(f"unknown create status: {error}") from error


def encode_balances(balances: list[tb.AccountBalance]) -> bytes:
    return b"".join(
        _account_balance.pack(
            *split_u128(b.debits_pending),
            *split_u128(b.debits_posted),
            *split_u128(b.credits_pending),
            *split_u128(b.credits_posted),
            b.timestamp,
        )
        for b in balances
    )


def decode_balances(payload: bytes) -> list[tb.AccountBalance]:
    _check_size(payload, _account_balance.size, "account balances")
    return [
        tb.AccountBalance(
            debits_pending=join_u128(f[0], f[1]),
            debits_posted=join_u128(f[2], f[3]),
            credits_pending=join_u128(f[4], f[5]),
            credits_posted=join_u128(f[6], f[7]),
            timestamp=f[8],
        )
        for f in _account_balance.iter_unpack(payload)
    ]


# ------------------------------------------------------------------------------------------
# Errors: what the server's engine raised, carried back and raised again as the same type.


def reply_for_error(request_id: int, error: Exception) -> ReplyHeader:
    match error:
        case tb.TooMuchDataError():
            status = ReplyStatus.TOO_MUCH_DATA
        case tb.IntegerOverflowError():
            status = ReplyStatus.INTEGER_OVERFLOW
        case ProtocolError():
            status = ReplyStatus.INVALID_REQUEST
        case InvariantViolation():
            status = ReplyStatus.INVARIANT_VIOLATION
        case _:  # tb.ClientClosedError, a failed journal write: the engine refuses work.
            status = ReplyStatus.UNAVAILABLE
    message = str(error) or type(error).__name__
    return ReplyHeader(request_id=request_id, status=status, message=message[:message_length_max])


def raise_for_reply(header: ReplyHeader) -> None:
    """Raise the exception `header` carries, as the type the engine raised; or return."""
    match header.status:
        case ReplyStatus.OK:
            return
        case ReplyStatus.TOO_MUCH_DATA:
            raise tb.TooMuchDataError()
        case ReplyStatus.INTEGER_OVERFLOW:
            raise tb.IntegerOverflowError(header.message)
        case ReplyStatus.UNAVAILABLE:
            raise LedgerUnavailable(
                f"the ledger server could not execute the request ({header.message}); "
                "the outcome is unknown, retry with the same ids"
            )
        case ReplyStatus.INVALID_REQUEST:
            raise InvariantViolation(f"the ledger server refused a request: {header.message}")
        case ReplyStatus.INVARIANT_VIOLATION:
            raise InvariantViolation(f"the ledger server failed an invariant: {header.message}")
