"""Exporting a period of the audit trail, for an auditor who trusts neither Kovra nor its
database: the records as JSON Lines, each line self-verifiable (its canonical JSON holds
the fields and hashes of `compliance.audit.chain`), beside a checksum file that names the
file's SHA-256 and its row count. `kovra audit export` runs it.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import os
from pathlib import Path

import asyncpg
import msgspec

from compliance.audit.chain import (
    AuditInputError,
    AuditRecord,
    Source,
    canonical_json,
    connection_from,
    record_columns,
    rfc3339,
)

# Rows fetched per round trip while exporting.
export_batch_size = 1_000
checksum_suffix = ".sha256"
partial_suffix = ".partial"

_select_range = (
    f"SELECT {record_columns} FROM audit_records "  # noqa: S608
    "WHERE recorded_at >= $1 AND recorded_at < $2 ORDER BY seq"
)


class ExportResult(msgspec.Struct, frozen=True, kw_only=True):
    """What `export` wrote; paths are text so the result encodes as JSON as it is."""

    path: str
    checksum_path: str
    sha256: str
    row_count: int
    first_seq: int | None
    last_seq: int | None


class _ExportFile:
    """Blocking file work for `export`, run in a thread: rows go to `<path>.partial`, which
    is renamed into place only once complete, then `<path>.sha256` is written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(path.name + partial_suffix)
        self.checksum_path = path.with_name(path.name + checksum_suffix)
        self.digest = hashlib.sha256()
        self.handle = self.partial.open("wb")

    def write(self, data: bytes) -> None:
        self.digest.update(data)
        self.handle.write(data)

    def commit(self, row_count: int) -> str:
        self.handle.close()
        os.replace(self.partial, self.path)
        sha256 = self.digest.hexdigest()
        self.checksum_path.write_text(
            f"{sha256}  {self.path.name}\n# rows: {row_count}\n", encoding="utf-8"
        )
        return sha256

    def discard(self) -> None:
        self.handle.close()
        self.partial.unlink(missing_ok=True)


async def export(
    source: Source, *, start: datetime.datetime, end: datetime.datetime, path: Path
) -> ExportResult:
    """Write the records with start <= recorded_at < end to `path` as JSON Lines.

    Each line is one record's canonical JSON (keys action, actor, details, payload_hash,
    previous_hash, record_hash, recorded_at, seq, target; hashes in lowercase hex) and a
    newline, in seq order. Beside it, `<path>.sha256` holds `<sha256 hex>  <file name>` (the
    `sha256sum` format, so `sha256sum -c` checks it) and then `# rows: <count>`, a comment
    line to `sha256sum`.
    """
    if start.tzinfo is None or end.tzinfo is None or not start < end:
        raise AuditInputError("an export needs timezone-aware start < end")
    output = await asyncio.to_thread(_ExportFile, path)
    try:
        seqs = await _write_range(source, output, start=start, end=end)
    except BaseException:
        await asyncio.to_thread(output.discard)
        raise
    sha256 = await asyncio.to_thread(output.commit, len(seqs))
    return ExportResult(
        path=str(path),
        checksum_path=str(output.checksum_path),
        sha256=sha256,
        row_count=len(seqs),
        first_seq=seqs[0] if seqs else None,
        last_seq=seqs[-1] if seqs else None,
    )


async def _write_range(
    source: Source, output: _ExportFile, *, start: datetime.datetime, end: datetime.datetime
) -> list[int]:
    seqs: list[int] = []
    async with (
        connection_from(source) as connection,
        connection.transaction(isolation="repeatable_read", readonly=True),
    ):
        cursor = await connection.cursor(_select_range, start, end)
        while rows := await cursor.fetch(export_batch_size):
            chunk = b"".join(export_line(row) for row in rows)
            await asyncio.to_thread(output.write, chunk)
            seqs.extend(int(row["seq"]) for row in rows)
    return seqs


def export_line(row: asyncpg.Record | AuditRecord) -> bytes:
    """One record as an export line: its canonical JSON and a newline."""
    record = row if isinstance(row, AuditRecord) else _record(row)
    fields = {
        "action": record.action,
        "actor": record.actor,
        "details": record.details,
        "payload_hash": record.payload_hash.hex(),
        "previous_hash": record.previous_hash.hex(),
        "record_hash": record.record_hash.hex(),
        "recorded_at": rfc3339(record.recorded_at),
        "seq": record.seq,
        "target": record.target,
    }
    return canonical_json(fields) + b"\n"


def _record(row: asyncpg.Record) -> AuditRecord:
    return AuditRecord(
        seq=int(row["seq"]),
        recorded_at=row["recorded_at"],
        actor=row["actor"],
        action=row["action"],
        target=row["target"],
        details=json.loads(row["details"]),
        payload_hash=bytes(row["payload_hash"]),
        previous_hash=bytes(row["previous_hash"]),
        record_hash=bytes(row["record_hash"]),
    )
