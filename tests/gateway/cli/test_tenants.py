"""`kovra tenant` and `kovra api-key` through a real process against real Postgres and
Redis: `tenant create --json` onboards a tenant whose printed key then works through the
gateway's auth (and `liquidity fund` runs on the same database), and operators list tenants
a page at a time and list the keys they issue, without their secrets."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import asyncpg
import redis.asyncio as redis_asyncio

from gateway.http.ratelimit import RateLimiter
from gateway.infra.database.migrate import migrate
from tests import redis_server
from tests.gateway.kovra_cli import run_kovra


async def test_tenant_create_prints_a_working_key(empty_database: str, tmp_path: Path) -> None:
    await migrate(empty_database)
    environment = {
        "DATABASE_URL": empty_database,
        "REDIS_URL": redis_server.redis_url(12),
        "KOVRA_DATA_DIR": str(tmp_path),
    }
    result = run_kovra(
        ["tenant", "create", "--name", "Acme", "--tier", "growth", "--json"], environment
    )
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert set(created) == {"tenant_id", "api_key"}
    connection = await asyncpg.connect(empty_database)
    try:
        tenant = await connection.fetchrow(
            """SELECT t.name, l.name AS tier FROM tenants t
               JOIN limit_policies l ON l.id = t.limit_policy_id WHERE t.id = $1""",
            created["tenant_id"],
        )
        assert tenant is not None
        assert (tenant["name"], tenant["tier"]) == ("Acme", "growth")
        actions = await connection.fetch("SELECT actor, action FROM audit_records ORDER BY seq")
        assert [row["action"] for row in actions] == ["tenant.create", "api_key.create"]
        assert all(row["actor"].startswith("cli:") for row in actions)
    finally:
        await connection.close()
    redis = redis_asyncio.Redis.from_url(redis_server.redis_url(12))
    try:
        outcome = await RateLimiter(redis).authenticate_api_key(
            key_hash_hex=hashlib.sha256(created["api_key"].encode()).hexdigest()
        )
        assert outcome.principal is not None
        assert outcome.principal.tenant_id == created["tenant_id"]
        assert outcome.principal.role == "admin"
    finally:
        await redis.aclose()
    funded = run_kovra(["liquidity", "fund", "EUR", "100000"], environment)
    assert funded.returncode == 0, funded.stderr
    assert "funded 100000" in funded.stdout


async def test_operators_list_tenants_and_their_keys(empty_database: str, tmp_path: Path) -> None:
    await migrate(empty_database)
    environment = {
        "DATABASE_URL": empty_database,
        "REDIS_URL": redis_server.redis_url(12),
        "KOVRA_DATA_DIR": str(tmp_path),
    }
    created = []
    for name in ("First", "Second"):
        result = run_kovra(["tenant", "create", "--name", name, "--json"], environment)
        assert result.returncode == 0, result.stderr
        created.append(json.loads(result.stdout)["tenant_id"])
    listed = run_kovra(["tenant", "list", "--json"], environment)
    assert listed.returncode == 0, listed.stderr
    tenants = json.loads(listed.stdout)
    assert [t["id"] for t in tenants] == sorted(created)
    assert {t["name"] for t in tenants} == {"First", "Second"}

    first_page = run_kovra(["tenant", "list", "--limit", "1"], environment)
    assert first_page.returncode == 0, first_page.stderr
    assert first_page.stdout.split()[0] == str(min(created))
    assert f"--after {min(created)}" in first_page.stderr
    assert run_kovra(["tenant", "list", "--limit", "0"], environment).returncode == 2

    issued = run_kovra(["api-key", "create", "--tenant", str(created[0])], environment)
    assert issued.returncode == 0, issued.stderr
    keys = run_kovra(["api-key", "list", "--tenant", str(created[0])], environment)
    assert keys.returncode == 0, keys.stderr
    lines = [json.loads(line) for line in keys.stdout.splitlines()]
    assert [(k["role"], k["secret"]) for k in lines] == [("admin", None), ("operator", None)]
    assert json.loads(issued.stdout)["api_key"] not in keys.stdout
