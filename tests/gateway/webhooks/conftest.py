"""Shared set-up for webhook tests on a real, migrated database: a tenant, endpoints, and
events inserted into the outbox as the services write them."""

from __future__ import annotations

import json
import uuid

import asyncpg
import msgspec
import pytest

from gateway.infra.sealing import SecretBox
from gateway.tenancy.records import create_tenant
from gateway.webhooks.records.endpoints import EndpointRow, create_endpoint, in_flight_max_default
from gateway.webhooks.signing import new_secret

# The key these tests seal webhook secrets with, as KOVRA_SECRETS_KEY would.
box = SecretBox("webhook-tests-sealing-key-" + "k" * 32)


class Endpoint(msgspec.Struct, frozen=True, kw_only=True):
    """A created endpoint and the secret it signs with (the API shows it once)."""

    row: EndpointRow
    secret: str

    @property
    def id(self) -> uuid.UUID:
        return self.row.id


@pytest.fixture
async def tenant_id(pool: asyncpg.Pool) -> int:
    tenant = await create_tenant(pool, name="hooks", tier="growth", compliance_region="EU")
    return tenant.id


async def add_endpoint(
    pool: asyncpg.Pool,
    tenant_id: int,
    url: str,
    enabled_events: list[str] | None = None,
    *,
    in_flight_max: int = in_flight_max_default,
) -> Endpoint:
    secret = new_secret()
    row = await create_endpoint(
        pool,
        box,
        endpoint_id=uuid.uuid4(),
        tenant_id=tenant_id,
        url=url,
        description=None,
        enabled_events=enabled_events or ["*"],
        secret=secret,
        in_flight_max=in_flight_max,
    )
    return Endpoint(row=row, secret=secret)


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
