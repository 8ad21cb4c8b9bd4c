"""`kovra statements ingest FILE` through a real process against real Postgres and Redis:
a camt.054 crediting a tenant's reference is recorded and credited, the same file again
credits nothing more, the ingestion is audited under the operator's name, and an invalid
file is refused with its code and stores nothing."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg

from gateway.funding.references import funding_reference
from gateway.infra.database.migrate import migrate
from tests import redis_server
from tests.gateway.kovra_cli import run_kovra
from tests.rails.statements.camt_files import EntrySpec, FileSpec, camt


async def test_a_file_is_ingested_once_and_a_bad_one_refused(
    empty_database: str, tmp_path: Path
) -> None:
    await migrate(empty_database)
    environment = {
        "DATABASE_URL": empty_database,
        "REDIS_URL": redis_server.redis_url(12),
        "KOVRA_DATA_DIR": str(tmp_path),
    }
    created = run_kovra(
        ["tenant", "create", "--name", "Acme", "--tier", "growth", "--json"], environment
    )
    assert created.returncode == 0, created.stderr
    tenant_id = json.loads(created.stdout)["tenant_id"]
    credit = EntrySpec(
        amount="12.34", servicer_reference="CLI-1", creditor_reference=funding_reference(tenant_id)
    )
    path = tmp_path / "notification.xml"
    path.write_bytes(camt(FileSpec(kind="camt.054", entries=(credit,))))
    first = run_kovra(["statements", "ingest", str(path)], environment)
    assert first.returncode == 0, first.stderr
    assert (json.loads(first.stdout)["credited"], json.loads(first.stdout)["repeated"]) == (1, 0)
    second = run_kovra(["statements", "ingest", str(path)], environment)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["repeated"] == 1
    bad = tmp_path / "bad.xml"
    bad.write_bytes(b"<Document/>")
    refused = run_kovra(["statements", "ingest", str(bad)], environment)
    assert refused.returncode == 1
    assert refused.stderr.startswith("invalid_statement: ")
    connection = await asyncpg.connect(empty_database)
    try:
        entries = await connection.fetch("SELECT status, tenant_id, amount_minor FROM bank_entries")
        assert [tuple(row) for row in entries] == [("credited", tenant_id, 1234)]
        actors = await connection.fetch(
            "SELECT actor FROM audit_records WHERE action = 'statement.ingest'"
        )
        assert len(actors) == 2
        assert all(row["actor"].startswith("cli:") for row in actors)
    finally:
        await connection.close()
