"""`export` writes exactly a time range, in seq order, each line self-verifiable, with a
checksum file `sha256sum -c` accepts that also gives the row count; an empty range is an
empty file; a range that is not an aware start before its end is refused, writing nothing."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
from pathlib import Path

import asyncpg
import pytest

from compliance.audit import chain as audit
from compliance.audit.chain import AuditInputError
from compliance.audit.export import export, export_line
from tests.compliance.audit.test_chain import append_many

utc = datetime.UTC


def files_in(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir())


async def test_export_writes_exactly_the_records_in_range(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    chain = await append_many(pool, 6)
    times = [record.recorded_at for record in chain]
    assert times == sorted(set(times))
    path = tmp_path / "audit.jsonl"

    result = await export(pool, start=times[1], end=times[4], path=path)

    content = path.read_bytes()
    assert content == b"".join(export_line(record) for record in chain[1:4])
    assert (result.row_count, result.first_seq, result.last_seq) == (3, 2, 4)
    assert result.sha256 == hashlib.sha256(content).hexdigest()
    assert (result.path, result.checksum_path) == (str(path), f"{path}.sha256")
    checksum = (tmp_path / "audit.jsonl.sha256").read_text()
    assert checksum == f"{result.sha256}  audit.jsonl\n# rows: 3\n"
    checker = await asyncio.create_subprocess_exec(
        "sha256sum", "--check", "--strict", "audit.jsonl.sha256", cwd=tmp_path
    )
    assert await checker.wait() == 0
    assert files_in(tmp_path) == ["audit.jsonl", "audit.jsonl.sha256"]


async def test_export_lines_are_self_verifiable_and_an_empty_range_is_empty(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    chain = await append_many(pool, 2)
    everything = await export(
        pool,
        start=chain[0].recorded_at,
        end=chain[-1].recorded_at + datetime.timedelta(seconds=1),
        path=tmp_path / "all.jsonl",
    )
    lines = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text().splitlines()]
    assert everything.row_count == len(lines) == 2
    for line, record in zip(lines, chain, strict=True):
        payload = {
            key: line[key] for key in ("action", "actor", "details", "recorded_at", "target")
        }
        assert hashlib.sha256(audit.canonical_json(payload)).hexdigest() == line["payload_hash"]
        assert line["record_hash"] == record.record_hash.hex()

    later = chain[-1].recorded_at + datetime.timedelta(days=1)
    empty = await export(
        pool, start=later, end=later + datetime.timedelta(days=1), path=tmp_path / "none.jsonl"
    )
    assert (empty.row_count, empty.first_seq, empty.last_seq) == (0, None, None)
    assert empty.sha256 == hashlib.sha256(b"").hexdigest()


async def test_an_export_needs_an_aware_start_before_its_end(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    now = datetime.datetime.now(utc)
    for start, end in [
        (now, now),
        (now, now - datetime.timedelta(1)),
        (now.replace(tzinfo=None), now),
    ]:
        with pytest.raises(AuditInputError, match="timezone-aware start < end"):
            await export(pool, start=start, end=end, path=tmp_path / "x.jsonl")
    assert files_in(tmp_path) == []
