"""Shared set-up for webhook tests on a real, migrated database: a tenant, endpoints, and
events inserted into the outbox as the services write them."""

from __future__ import annotations

import json
import uuid

import asyncpg
import pytest

from gateway.db.tenancy import create_tenant
from gateway.webhooks.endpoints import EndpointRow, create_endpoint
from gateway.webhooks.signing import new_secret


@pytest.fixture
async def tenant_id(pool: asyncpg.Pool) -> int:
    tenant = await create_tenant(pool, name="hooks", tier="growth", compliance_region="EU")
    return tenant.id


async def add_endpoint(
    pool: asyncpg.Pool, tenant_id: int, url: str, enabled_events: list[str] | None = None
) -> EndpointRow:
    return await create_endpoint(
        pool,
        endpoint_id=uuid.uuid4(),
        tenant_id=tenant_id,
        url=url,
        description=None,
        enabled_events=enabled_events or ["*"],
        secret=new_secret(),
    )


async def add_events(pool: asyncpg.Pool, tenant_id: int, types: list[str]) -> list[uuid.UUID]:
    """Insert events in one statement, as the batch writer does."""
    ids = [uuid.uuid4() for _ in types]
    await pool.execute(
        """INSERT INTO events (id, tenant_id, type, object_id, payload)
           SELECT id, $2, type, id, $4::jsonb FROM unnest($1::uuid[], $3::text[]) AS e(id, type)""",
        ids,
        tenant_id,
        types,
        json.dumps({"amount": 1250, "currency": "EUR"}),
    )
    return ids
