"""`kovra audit` through a real process against real Postgres: `verify` prints the chain's
result and exits 0 while it holds, `export` writes a period with its checksum file and
prints what it wrote, and a period that is not a start before its end exits 2, writing
nothing."""

from __future__ import annotations

import datetime
import hashlib
import json
from pathlib import Path

import asyncpg

from compliance.audit import chain as audit
from gateway.infra.database.migrate import migrate
from tests import redis_server
from tests.gateway.kovra_cli import run_kovra


async def test_verify_and_export_a_chain(empty_database: str, tmp_path: Path) -> None:
    await migrate(empty_database)
    connection = await asyncpg.connect(empty_database)
    try:
        records = [
            await audit.append(
                connection, actor="cli:ops", action="test.audit", target=f"t:{n}", details={}
            )
            for n in range(3)
        ]
    finally:
        await connection.close()
    environment = {
        "DATABASE_URL": empty_database,
        "REDIS_URL": redis_server.redis_url(12),
        "KOVRA_DATA_DIR": str(tmp_path / "data"),
    }

    verified = run_kovra(["audit", "verify"], environment)
    assert verified.returncode == 0, verified.stderr
    result = json.loads(verified.stdout)
    assert (result["ok"], result["records_checked"]) == (True, 3)
    assert result["head_hash"] == records[-1].record_hash.hex()

    output = tmp_path / "audit.jsonl"
    start = records[0].recorded_at.isoformat()
    end = (records[-1].recorded_at + datetime.timedelta(seconds=1)).isoformat()
    exported = run_kovra(
        ["audit", "export", "--from", start, "--to", end, "--output", str(output)], environment
    )
    assert exported.returncode == 0, exported.stderr
    written = json.loads(exported.stdout)
    assert (written["row_count"], written["first_seq"], written["last_seq"]) == (3, 1, 3)
    assert written["sha256"] == hashlib.sha256(output.read_bytes()).hexdigest()
    checksum = tmp_path / "audit.jsonl.sha256"
    assert written["checksum_path"] == str(checksum)
    assert checksum.read_text().endswith("# rows: 3\n")

    refused = run_kovra(
        ["audit", "export", "--from", end, "--to", start, "--output", str(tmp_path / "x.jsonl")],
        environment,
    )
    assert refused.returncode == 2
    assert "timezone-aware start < end" in refused.stderr
    assert not (tmp_path / "x.jsonl").exists()
