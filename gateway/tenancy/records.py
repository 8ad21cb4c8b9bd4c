"""Tenants, their pricing and limit policies, and their API keys.

A tenant's tier is not an attribute of the tenant: it is whichever pricing and limit
policies the tenant is linked to (SPEC §7). API keys are random 256-bit secrets shown once;
only their SHA-256 is stored.
"""

from __future__ import annotations

import datetime
import hashlib
import secrets

import asyncpg
import msgspec

from gateway.http.paging import KeysetQuery, Page, PageRequest, row_ids

tiers = ("starter", "growth", "enterprise")
roles = ("admin", "operator", "read_only", "compliance")
tenant_statuses = ("active", "frozen")
compliance_regions = ("EU", "UK", "ID")
api_key_prefix = "kovra_sk_"
# `tenants.id` is a Postgres bigint drawn from an identity: no tenant has an id outside this.
tenant_id_min = 1
tenant_id_max = 2**63 - 1
api_key_secret_bytes = 32
tenant_name_length_max = 200
tenant_id_random_bits = 62
# The most rows one page of tenants or of a tenant's API keys answers.
admin_page_max = 500


class TenantRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    name: str
    compliance_region: str
    status: str
    pricing_policy: str
    limit_policy: str
    margin_bps: int
    requests_per_minute: int
    daily_limit_usd_minor: int
    created_at: datetime.datetime


class ApiKeyRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    tenant_id: int
    role: str
    prefix: str
    key_hash: bytes
    created_at: datetime.datetime
    revoked_at: datetime.datetime | None


_tenant_select = """
    SELECT t.id, t.name, t.compliance_region, t.status, t.created_at,
           p.name AS pricing_policy, p.margin_bps,
           l.name AS limit_policy, l.requests_per_minute, l.daily_limit_usd_minor
      FROM tenants t
      JOIN pricing_policies p ON p.id = t.pricing_policy_id
      JOIN limit_policies l ON l.id = t.limit_policy_id
"""


def _tenant(row: asyncpg.Record) -> TenantRecord:
    return TenantRecord(
        id=row["id"],
        name=row["name"],
        compliance_region=row["compliance_region"],
        status=row["status"],
        pricing_policy=row["pricing_policy"],
        limit_policy=row["limit_policy"],
        margin_bps=row["margin_bps"],
        requests_per_minute=row["requests_per_minute"],
        daily_limit_usd_minor=row["daily_limit_usd_minor"],
        created_at=row["created_at"],
    )


def _api_key(row: asyncpg.Record) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row["id"],
        tenant_id=row["tenant_id"],
        role=row["role"],
        prefix=row["prefix"],
        key_hash=bytes(row["key_hash"]),
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


def hash_api_key(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


async def create_tenant(
    pool: asyncpg.Pool, *, name: str, tier: str, compliance_region: str
) -> TenantRecord:
    """Create a tenant linked to the policies of `tier`."""
    if tier not in tiers:
        raise ValueError(f"tier must be one of {', '.join(tiers)}")
    if compliance_region not in compliance_regions:
        raise ValueError(f"compliance_region must be one of {', '.join(compliance_regions)}")
    if not 0 < len(name.strip()) <= tenant_name_length_max:
        raise ValueError(f"name must be 1 to {tenant_name_length_max} characters")
    # A random id, not a sequence: the tenant id is part of every ledger account id, and a
    # ledger outlives any one database (a restored or rebuilt Postgres must never hand an
    # existing tenant's accounts to a new tenant). 62 random bits make a clash negligible;
    # the primary key would refuse one anyway.
    new_id = await pool.fetchval(
        """INSERT INTO tenants (id, name, compliance_region, pricing_policy_id, limit_policy_id)
           VALUES ($4, $1, $2, (SELECT id FROM pricing_policies WHERE name = $3),
                   (SELECT id FROM limit_policies WHERE name = $3))
           RETURNING id""",
        name.strip(),
        compliance_region,
        tier,
        secrets.randbits(tenant_id_random_bits) + 1,
    )
    tenant = await get_tenant(pool, int(new_id))
    if tenant is None:
        raise RuntimeError("a tenant just created could not be read back")
    return tenant


async def get_tenant(pool: asyncpg.Pool, tenant_id: int) -> TenantRecord | None:
    row = await pool.fetchrow(_tenant_select + " WHERE t.id = $1", tenant_id)
    return None if row is None else _tenant(row)


_tenant_pages = KeysetQuery(
    _tenant_select + " WHERE ($1::text IS NULL OR t.status = $1)", kind=row_ids, table="t"
)
_api_key_pages = KeysetQuery("SELECT * FROM api_keys WHERE tenant_id = $1", kind=row_ids)


async def list_tenants(
    pool: asyncpg.Pool, *, status: str | None, page: PageRequest[int]
) -> Page[TenantRecord]:
    """A page of tenants in id order, only `status` ones if given."""
    return await _tenant_pages.page(pool, page, status, row=_tenant)


async def list_api_keys(
    pool: asyncpg.Pool, *, tenant_id: int, page: PageRequest[int]
) -> Page[ApiKeyRecord]:
    """A page of the tenant's API keys, revoked ones included, in id order."""
    return await _api_key_pages.page(pool, page, tenant_id, row=_api_key)


async def find_tenant_by_name(pool: asyncpg.Pool, name: str) -> TenantRecord | None:
    """The oldest tenant with this name (used to seed the demo tenant only once)."""
    row = await pool.fetchrow(_tenant_select + " WHERE t.name = $1 ORDER BY t.id LIMIT 1", name)
    return None if row is None else _tenant(row)


async def set_tenant_policies(
    pool: asyncpg.Pool, *, tenant_id: int, pricing_policy: str, limit_policy: str
) -> TenantRecord | None:
    """Link the tenant to other policies; None when the tenant does not exist."""
    updated = await pool.fetchval(
        """UPDATE tenants
              SET pricing_policy_id = (SELECT id FROM pricing_policies WHERE name = $2),
                  limit_policy_id = (SELECT id FROM limit_policies WHERE name = $3)
            WHERE id = $1 RETURNING id""",
        tenant_id,
        pricing_policy,
        limit_policy,
    )
    return None if updated is None else await get_tenant(pool, tenant_id)


async def set_tenant_status(pool: asyncpg.Pool, *, tenant_id: int, status: str) -> bool:
    if status not in tenant_statuses:
        raise ValueError("status must be active or frozen")
    result = await pool.execute("UPDATE tenants SET status = $2 WHERE id = $1", tenant_id, status)
    return bool(result == "UPDATE 1")


async def create_api_key(
    pool: asyncpg.Pool, *, tenant_id: int, role: str
) -> tuple[ApiKeyRecord, str]:
    """A new key for the tenant; the secret is returned here and never again."""
    if role not in roles:
        raise ValueError(f"role must be one of {', '.join(roles)}")
    secret = api_key_prefix + secrets.token_urlsafe(api_key_secret_bytes)
    row = await pool.fetchrow(
        """INSERT INTO api_keys (tenant_id, key_hash, prefix, role) VALUES ($1, $2, $3, $4)
           RETURNING *""",
        tenant_id,
        hash_api_key(secret),
        secret[: len(api_key_prefix) + 6],
        role,
    )
    if row is None:
        raise RuntimeError("INSERT ... RETURNING returned no row")
    return _api_key(row), secret


async def revoke_api_key(
    pool: asyncpg.Pool, *, key_id: int, tenant_id: int | None = None
) -> ApiKeyRecord | None:
    """Revoke the key (only the tenant's own when `tenant_id` is given); None if not found."""
    row = await pool.fetchrow(
        """UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now())
            WHERE id = $1 AND ($2::bigint IS NULL OR tenant_id = $2) RETURNING *""",
        key_id,
        tenant_id,
    )
    return None if row is None else _api_key(row)


async def find_active_api_key(
    pool: asyncpg.Pool, key_hash: bytes
) -> tuple[ApiKeyRecord, TenantRecord] | None:
    """The unrevoked key with this hash and its tenant (the cache-miss path of auth)."""
    row = await pool.fetchrow(
        "SELECT * FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL", key_hash
    )
    if row is None:
        return None
    key = _api_key(row)
    tenant = await get_tenant(pool, key.tenant_id)
    return None if tenant is None else (key, tenant)


async def create_limit_policy(
    pool: asyncpg.Pool, *, name: str, requests_per_minute: int, daily_limit_usd_minor: int
) -> int | None:
    """A new limit policy's id; None when the name is taken."""
    value = await pool.fetchval(
        """INSERT INTO limit_policies (name, requests_per_minute, daily_limit_usd_minor)
           VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING RETURNING id""",
        name,
        requests_per_minute,
        daily_limit_usd_minor,
    )
    return None if value is None else int(value)


async def create_pricing_policy(
    pool: asyncpg.Pool, *, name: str, margin_bps: int, fee_bps: int, fee_fixed_usd_minor: int
) -> int | None:
    """A new pricing policy's id; None when the name is taken."""
    value = await pool.fetchval(
        """INSERT INTO pricing_policies (name, margin_bps, fee_bps, fee_fixed_usd_minor)
           VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING RETURNING id""",
        name,
        margin_bps,
        fee_bps,
        fee_fixed_usd_minor,
    )
    return None if value is None else int(value)
