"""Tenant onboarding shared by the admin API and the CLI.

Creating a tenant writes Postgres (tenant, policies, first API key), opens the tenant's
ledger accounts in every enabled currency, publishes the tenant and key to Redis (so the
first request needs no database read), and records the admin action.
"""

from __future__ import annotations

from gateway.infra.database.records import record_admin_action
from gateway.runtime import Services
from gateway.tenancy.records import ApiKeyRecord, TenantRecord, create_api_key, create_tenant


async def publish_tenant(services: Services, tenant: TenantRecord) -> None:
    """Make Redis agree with Postgres about the tenant's limits and status."""
    await services.limiter.store_tenant(
        tenant_id=tenant.id,
        requests_per_minute=tenant.requests_per_minute,
        status=tenant.status,
        compliance_region=tenant.compliance_region,
        daily_limit_usd_minor=tenant.daily_limit_usd_minor,
    )


async def issue_api_key(
    services: Services, *, tenant: TenantRecord, role: str, actor: str
) -> tuple[ApiKeyRecord, str]:
    await record_admin_action(
        services.pool,
        actor=actor,
        action="api_key.create",
        target=f"tenant:{tenant.id}",
        details={"role": role},
    )
    key, secret = await create_api_key(services.pool, tenant_id=tenant.id, role=role)
    await publish_tenant(services, tenant)
    await services.limiter.store_api_key(
        key_hash_hex=key.key_hash.hex(), tenant_id=tenant.id, role=key.role, key_id=key.id
    )
    return key, secret


async def create_tenant_with_key(
    services: Services, *, name: str, tier: str, compliance_region: str, actor: str
) -> tuple[TenantRecord, str]:
    """A new tenant with its ledger accounts and an admin-role API key (shown once)."""
    tenant = await create_tenant(
        services.pool, name=name, tier=tier, compliance_region=compliance_region
    )
    await record_admin_action(
        services.pool,
        actor=actor,
        action="tenant.create",
        target=f"tenant:{tenant.id}",
        details={"name": name, "tier": tier, "compliance_region": compliance_region},
    )
    await services.ledger.open_tenant_accounts(tenant.id)
    _, secret = await issue_api_key(services, tenant=tenant, role="admin", actor=actor)
    return tenant, secret
