"""The review queue pages like every other list: oldest first, `limit` at a time, each page
starting after the cursor of the one before, so every case of a queue longer than a page is
reached exactly once (several cases created in one insert share their created_at, and the
id orders them); a tenant sees only its own cases."""

from __future__ import annotations

import json
import uuid

import asyncpg

from compliance.cases.records import CaseRow, list_cases
from gateway.http.paging import PageRequest, Position, positions


async def add_cases(pool: asyncpg.Pool, tenant_id: int, count: int) -> set[uuid.UUID]:
    """`count` open cases of `tenant_id` in one insert (one created_at for all)."""
    ids = [uuid.uuid4() for _ in range(count)]
    await pool.executemany(
        """INSERT INTO compliance_cases (id, compliance_region, tenant_id, transfer_id, score,
                                         reasons)
           VALUES ($1, 'EU', $2, $3, 60, $4::jsonb)""",
        [(case_id, tenant_id, uuid.uuid4(), json.dumps(["amount"])) for case_id in ids],
    )
    return set(ids)


async def test_pages_reach_every_case_once(pool: asyncpg.Pool) -> None:
    mine = await add_cases(pool, 1, 7)
    await add_cases(pool, 2, 3)
    moments = await pool.fetchval(
        "SELECT count(DISTINCT created_at) FROM compliance_cases WHERE tenant_id = 1"
    )
    assert moments == 1  # The cursor's id half is what orders them.
    seen: list[CaseRow] = []
    request: PageRequest[Position] | None = PageRequest(limit=3, cursor=None, kind=positions)
    while request is not None:
        page = await list_cases(pool, tenant_id=1, status="open", page=request)
        seen += page.items
        request = request.following(page.next_cursor)
    assert {case.id for case in seen} == mine
    assert len(seen) == len(mine)
    assert [(c.created_at, c.id) for c in seen] == sorted((c.created_at, c.id) for c in seen)
