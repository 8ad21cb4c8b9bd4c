"""The embedded ledger's write-ahead journal: every applied request, replayed at start.

The engine is deterministic given (operation, timestamp, events), so the journal stores only
requests, never state. Records are framed with a CRC32 so a process killed mid-write leaves a
torn tail that is detected and cut off at the next start; a damaged record followed by good
ones is corruption and stops the start with an error instead of silently losing money.

Events are packed in TigerBeetle's own 128-byte layouts (u128 as two little-endian u64).
"""

from __future__ import annotations

import enum
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import tigerbeetle as tb

from ledger.invariants import ensure

journal_magic = b"KOVRAJ01"
_record_header = struct.Struct("<IIB3xQ")  # crc32, payload length, operation, timestamp
_account = struct.Struct("<12QQIIIHHQ")
_transfer = struct.Struct("<12QQIIIHHQ")
event_size = 128
_u64_mask = (1 << 64) - 1
ensure(_account.size == event_size and _transfer.size == event_size, "TigerBeetle's layout")
ensure(_record_header.size == 20, "record header is 20 bytes")


class JournalOperation(enum.IntEnum):
    CREATE_ACCOUNTS = 1
    CREATE_TRANSFERS = 2
    EXPIRE_PENDING_TRANSFERS = 3


class JournalCorrupt(RuntimeError):
    """A record in the middle of the journal fails its checksum: refuse to start."""


def _split(value: int) -> tuple[int, int]:
    return value & _u64_mask, value >> 64


def _join(low: int, high: int) -> int:
    return (high << 64) | low


def pack_accounts(accounts: list[tb.Account]) -> bytes:
    return b"".join(
        _account.pack(
            *_split(a.id),
            *_split(a.debits_pending),
            *_split(a.debits_posted),
            *_split(a.credits_pending),
            *_split(a.credits_posted),
            *_split(a.user_data_128),
            a.user_data_64,
            a.user_data_32,
            0,
            a.ledger,
            a.code,
            int(a.flags),
            a.timestamp,
        )
        for a in accounts
    )


def unpack_accounts(payload: bytes) -> list[tb.Account]:
    accounts = []
    for fields in _account.iter_unpack(payload):
        accounts.append(
            tb.Account(
                id=_join(fields[0], fields[1]),
                debits_pending=_join(fields[2], fields[3]),
                debits_posted=_join(fields[4], fields[5]),
                credits_pending=_join(fields[6], fields[7]),
                credits_posted=_join(fields[8], fields[9]),
                user_data_128=_join(fields[10], fields[11]),
                user_data_64=fields[12],
                user_data_32=fields[13],
                ledger=fields[15],
                code=fields[16],
                flags=tb.AccountFlags(fields[17]),
                timestamp=fields[18],
            )
        )
    return accounts


def pack_transfers(transfers: list[tb.Transfer]) -> bytes:
    return b"".join(
        _transfer.pack(
            *_split(t.id),
            *_split(t.debit_account_id),
            *_split(t.credit_account_id),
            *_split(t.amount),
            *_split(t.pending_id),
            *_split(t.user_data_128),
            t.user_data_64,
            t.user_data_32,
            t.timeout,
            t.ledger,
            t.code,
            int(t.flags),
            t.timestamp,
        )
        for t in transfers
    )


def unpack_transfers(payload: bytes) -> list[tb.Transfer]:
    transfers = []
    for fields in _transfer.iter_unpack(payload):
        transfers.append(
            tb.Transfer(
                id=_join(fields[0], fields[1]),
                debit_account_id=_join(fields[2], fields[3]),
                credit_account_id=_join(fields[4], fields[5]),
                amount=_join(fields[6], fields[7]),
                pending_id=_join(fields[8], fields[9]),
                user_data_128=_join(fields[10], fields[11]),
                user_data_64=fields[12],
                user_data_32=fields[13],
                timeout=fields[14],
                ledger=fields[15],
                code=fields[16],
                flags=tb.TransferFlags(fields[17]),
                timestamp=fields[18],
            )
        )
    return transfers


def encode_record(operation: JournalOperation, timestamp: int, payload: bytes) -> bytes:
    """One framed record; the CRC covers everything after itself."""
    body = _record_header.pack(0, len(payload), int(operation), timestamp)[4:] + payload
    return struct.pack("<I", zlib.crc32(body)) + body


class JournalRecord:
    __slots__ = ("operation", "payload", "timestamp")

    def __init__(self, operation: JournalOperation, timestamp: int, payload: bytes) -> None:
        self.operation = operation
        self.timestamp = timestamp
        self.payload = payload


class Journal:
    """An append-only file of framed records. `read` once at start, then `append`."""

    def __init__(self, path: Path, *, fsync: bool) -> None:
        self.path = path
        self._fsync = fsync
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        if os.fstat(self._fd).st_size == 0:
            os.write(self._fd, journal_magic)
            os.fsync(self._fd)

    def read(self) -> Iterator[JournalRecord]:
        """Yield every intact record; cut a torn tail off the file; raise on corruption."""
        data = self.path.read_bytes()
        if data[: len(journal_magic)] != journal_magic:
            raise JournalCorrupt(f"{self.path} is not a Kovra ledger journal")
        offset = len(journal_magic)
        while offset < len(data):
            record, next_offset = self._decode(data, offset)
            if record is None:
                os.ftruncate(self._fd, offset)
                os.fsync(self._fd)
                break
            yield record
            offset = next_offset
        os.lseek(self._fd, 0, os.SEEK_END)

    def _decode(self, data: bytes, offset: int) -> tuple[JournalRecord | None, int]:
        header_end = offset + _record_header.size
        if header_end > len(data):
            return None, offset  # Torn header: the process died while writing it.
        crc, length, operation, timestamp = _record_header.unpack_from(data, offset)
        end = header_end + length
        if end > len(data):
            return None, offset  # Torn payload.
        if zlib.crc32(data[offset + 4 : end]) != crc:
            if end == len(data):
                return None, offset  # A torn final write can also fail its checksum.
            raise JournalCorrupt(f"{self.path}: record at byte {offset} fails its checksum")
        return JournalRecord(JournalOperation(operation), timestamp, data[header_end:end]), end

    def append(self, records: bytes) -> None:
        """Write already-encoded records in one system call (and fsync when configured)."""
        view = memoryview(records)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        if self._fsync:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
