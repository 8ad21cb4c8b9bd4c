"""The embedded ledger's write-ahead journal: every applied request, replayed at start.

The engine is deterministic given (operation, timestamp, events), so the journal stores only
requests, never state. Records are framed with a CRC32 so a process killed mid-write leaves a
torn tail that is detected and cut off at the next start; a damaged record followed by good
ones is corruption and stops the start with an error instead of silently losing money.

Events are packed in TigerBeetle's own 128-byte layouts (`ledger.clients.codec`).
"""

from __future__ import annotations

import enum
import fcntl
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

from ledger.invariants import ensure

journal_magic = b"KOVRAJ01"
# header crc32 (of the rest of the header), payload crc32, payload length, operation, timestamp
_record_header = struct.Struct("<IIIB3xQ")
ensure(_record_header.size == 24, "record header is 24 bytes")


class JournalOperation(enum.IntEnum):
    CREATE_ACCOUNTS = 1
    CREATE_TRANSFERS = 2
    EXPIRE_PENDING_TRANSFERS = 3


class JournalCorrupt(RuntimeError):
    """A record in the middle of the journal fails its checksum: refuse to start."""


class JournalInUse(RuntimeError):
    """Another process holds the journal open."""


def encode_record(operation: JournalOperation, timestamp: int, payload: bytes) -> bytes:
    """One framed record: a self-checked header, then the payload it checksums."""
    header = _record_header.pack(0, zlib.crc32(payload), len(payload), int(operation), timestamp)
    return struct.pack("<I", zlib.crc32(header[4:])) + header[4:] + payload


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
        try:
            # The engine is single-process: a second writer would interleave records.
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise JournalInUse(
                f"{path} is used by another process; the embedded ledger is single-process "
                "(set TB_ADDRESSES to share a real TigerBeetle cluster)"
            ) from None
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
        """The record at `offset`, or None for a torn tail (a write cut short by a crash).

        A write is cut short only at its end, so a torn record is always the last one and
        its header, when complete, is intact. A complete header that fails its own checksum
        is corruption wherever it is; its length can then not be trusted to find the next.
        """
        header_end = offset + _record_header.size
        if header_end > len(data):
            return None, offset  # Torn header.
        header_crc, payload_crc, length, operation, timestamp = _record_header.unpack_from(
            data, offset
        )
        if zlib.crc32(data[offset + 4 : header_end]) != header_crc:
            raise JournalCorrupt(f"{self.path}: record header at byte {offset} is damaged")
        end = header_end + length
        if end > len(data):
            return None, offset  # Torn payload.
        if zlib.crc32(data[header_end:end]) != payload_crc:
            if end == len(data):
                return None, offset  # The last write reached its length but not its content.
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
