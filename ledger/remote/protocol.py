"""The wire protocol between `RemoteLedgerClient` and the shared embedded ledger server.

It exists because the embedded engine lives in one process while the gateway runs several:
the server owns the engine and every other process reaches it over a local socket. Nothing
here knows about sockets beyond reading and writing frames; the client and the server share
these codecs so that both ends agree byte for byte.

A frame is `u32 length` (of everything after it), `u16 header length`, a msgpack header
(`RequestHeader` or `ReplyHeader`) and a binary payload. u128 values do not fit msgpack
integers, so payloads use TigerBeetle's own 128-byte layouts for accounts and transfers (the
journal's packers), 16-byte little-endian ids, and fixed structs for filters and results.
Frames above `frame_size_max` are refused on both ends.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import struct
from collections.abc import Callable
from typing import TypeVar

import msgspec
import tigerbeetle as tb

from ledger.clients.base import batch_size_max
from ledger.embedded.journal import event_size
from ledger.embedded.journal import unpack_accounts as _unpack_accounts
from ledger.embedded.journal import unpack_transfers as _unpack_transfers
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
_u64_mask = (1 << 64) - 1
# account_id, user_data_128 (u128 as low, high), user_data_64, user_data_32, code,
# timestamp_min, timestamp_max, limit, flags.
_account_filter = struct.Struct("<QQQQQIH2xQQII")
# user_data_128 (low, high), user_data_64, user_data_32, ledger, code, timestamp_min,
# timestamp_max, limit, flags.
_query_filter = struct.Struct("<QQQIIH2xQQII")
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


def _split(value: int) -> tuple[int, int]:
    return value & _u64_mask, value >> 64


def _join(low: int, high: int) -> int:
    return (high << 64) | low


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
    return _unpack_accounts(payload)


def unpack_transfers(payload: bytes) -> list[tb.Transfer]:
    _check_size(payload, event_size, "transfers")
    return _unpack_transfers(payload)


def encode_account_filter(value: tb.AccountFilter) -> bytes:
    return _account_filter.pack(
        *_split(value.account_id),
        *_split(value.user_data_128),
        value.user_data_64,
        value.user_data_32,
        value.code,
        value.timestamp_min,
        value.timestamp_max,
        value.limit,
        int(value.flags),
    )


def decode_account_filter(payload: bytes) -> tb.AccountFilter:
    fields = _unpack_one(_account_filter, payload, "account filter")
    return tb.AccountFilter(
        account_id=_join(fields[0], fields[1]),
        user_data_128=_join(fields[2], fields[3]),
        user_data_64=fields[4],
        user_data_32=fields[5],
        code=fields[6],
        timestamp_min=fields[7],
        timestamp_max=fields[8],
        limit=fields[9],
        flags=tb.AccountFilterFlags(fields[10]),
    )


def encode_query_filter(value: tb.QueryFilter) -> bytes:
    return _query_filter.pack(
        *_split(value.user_data_128),
        value.user_data_64,
        value.user_data_32,
        value.ledger,
        value.code,
        value.timestamp_min,
        value.timestamp_max,
        value.limit,
        int(value.flags),
    )


def decode_query_filter(payload: bytes) -> tb.QueryFilter:
    fields = _unpack_one(_query_filter, payload, "query filter")
    return tb.QueryFilter(
        user_data_128=_join(fields[0], fields[1]),
        user_data_64=fields[2],
        user_data_32=fields[3],
        ledger=fields[4],
        code=fields[5],
        timestamp_min=fields[6],
        timestamp_max=fields[7],
        limit=fields[8],
        flags=tb.QueryFilterFlags(fields[9]),
    )


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
            *_split(b.debits_pending),
            *_split(b.debits_posted),
            *_split(b.credits_pending),
            *_split(b.credits_posted),
            b.timestamp,
        )
        for b in balances
    )


def decode_balances(payload: bytes) -> list[tb.AccountBalance]:
    _check_size(payload, _account_balance.size, "account balances")
    return [
        tb.AccountBalance(
            debits_pending=_join(f[0], f[1]),
            debits_posted=_join(f[2], f[3]),
            credits_pending=_join(f[4], f[5]),
            credits_posted=_join(f[6], f[7]),
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
