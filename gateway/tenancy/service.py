"""Tenants, their API keys and their policies: shared by the admin API, the CLI and
`kovra dev`.

Creating a tenant writes Postgres (tenant, policies, first API key), opens the tenant's
ledger accounts in every enabled currency, publishes the tenant and key to Redis (so the
first request needs no database read), and records the admin action. Every change is
audited before it is made.
"""

from __future__ import annotations

import asyncpg
import msgspec

from compliance.audit.chain import record_admin_action
from gateway.http.paging import Page, PageRequest
from gateway.http.ratelimit import RateLimiter
from gateway.tenancy import records, wire
from gateway.tenancy.errors import PolicyExists, UnknownPolicy
from gateway.tenancy.records import ApiKeyRecord, TenantRecord
from ledger.service import Ledger


class Tenancy:
    """Onboarding and the admin plane's changes to tenants, keys and policies."""

    def __init__(self, *, pool: asyncpg.Pool, ledger: Ledger, limiter: RateLimiter) -> None:
        self._pool = pool
        self._ledger = ledger
        self._limiter = limiter

    async def tenant(self, tenant_id: int) -> TenantRecord | None:
        return await records.get_tenant(self._pool, tenant_id)

    async def tenants(self, *, status: str | None, page: PageRequest[int]) -> Page[TenantRecord]:
        return await records.list_tenants(self._pool, status=status, page=page)

    async def api_keys(self, *, tenant_id: int, page: PageRequest[int]) -> Page[ApiKeyRecord]:
        return await records.list_api_keys(self._pool, tenant_id=tenant_id, page=page)

    async def publish(self, tenant: TenantRecord) -> None:
        """Make Redis agree with Postgres about the tenant's limits and status."""
        await self._limiter.store_tenant(
            tenant_id=tenant.id,
            requests_per_minute=tenant.requests_per_minute,
            status=tenant.status,
            compliance_region=tenant.compliance_region,
            daily_limit_usd_minor=tenant.daily_limit_usd_minor,
        )

    async def issue_api_key(
        self, *, tenant: TenantRecord, role: str, actor: str
    ) -> tuple[ApiKeyRecord, str]:
        """A new key for the tenant, published to Redis; its secret is shown once."""
        await record_admin_action(
            self._pool,
            actor=actor,
            action="api_key.create",
            target=f"tenant:{tenant.id}",
            details={"role": role},
        )
        key, secret = await records.create_api_key(self._pool, tenant_id=tenant.id, role=role)
        await self.publish(tenant)
        await self._limiter.store_api_key(
            key_hash_hex=key.key_hash.hex(), tenant_id=tenant.id, role=key.role, key_id=key.id
        )
        return key, secret

    async def revoke_api_key(
        self, *, key_id: int, tenant_id: int | None, actor: str
    ) -> ApiKeyRecord | None:
        """Revoke the key (only the tenant's own when `tenant_id` is given), in Postgres and
        in Redis; None if there is no such key."""
        await record_admin_action(
            self._pool,
            actor=actor,
            action="api_key.revoke",
            target=f"api_key:{key_id}",
            details={"tenant_id": tenant_id},
        )
        key = await records.revoke_api_key(self._pool, key_id=key_id, tenant_id=tenant_id)
        if key is not None:
            await self._limiter.revoke_api_key(key_hash_hex=key.key_hash.hex())
        return key

    async def create_tenant_with_key(
        self, *, name: str, tier: str, compliance_region: str, actor: str
    ) -> tuple[TenantRecord, str]:
        """A new tenant with its ledger accounts and an admin-role API key (shown once)."""
        tenant = await records.create_tenant(
            self._pool, name=name, tier=tier, compliance_region=compliance_region
        )
        await record_admin_action(
            self._pool,
            actor=actor,
            action="tenant.create",
            target=f"tenant:{tenant.id}",
            details={"name": name, "tier": tier, "compliance_region": compliance_region},
        )
        await self._ledger.open_tenant_accounts(tenant.id)
        _, secret = await self.issue_api_key(tenant=tenant, role="admin", actor=actor)
        return tenant, secret

    async def set_policies(
        self, *, tenant_id: int, pricing_policy: str, limit_policy: str, actor: str
    ) -> TenantRecord | None:
        """Link the tenant to other policies; None when there is no such tenant."""
        await record_admin_action(
            self._pool,
            actor=actor,
            action="tenant.policies",
            target=f"tenant:{tenant_id}",
            details={"pricing_policy": pricing_policy, "limit_policy": limit_policy},
        )
        try:
            tenant = await records.set_tenant_policies(
                self._pool,
                tenant_id=tenant_id,
                pricing_policy=pricing_policy,
                limit_policy=limit_policy,
            )
        except asyncpg.NotNullViolationError as error:
            # An unknown name finds no policy id, and the tenant's column refuses the null.
            field = "limit_policy" if error.column_name == "limit_policy_id" else "pricing_policy"
            name = limit_policy if field == "limit_policy" else pricing_policy
            raise UnknownPolicy(f"no {field.replace('_', ' ')} named {name}", field=field) from None
        if tenant is not None:
            await self.publish(tenant)
        return tenant

    async def create_limit_policy(self, body: wire.LimitPolicyCreate, *, actor: str) -> int:
        """The new limit policy's id; `PolicyExists` when the name is taken."""
        await self._record_policy(f"limit_policy:{body.name}", body, actor=actor)
        policy_id = await records.create_limit_policy(
            self._pool,
            name=body.name,
            requests_per_minute=body.requests_per_minute,
            daily_limit_usd_minor=body.daily_limit_usd_minor,
        )
        if policy_id is None:
            raise PolicyExists(f"a limit policy named {body.name!r} exists")
        return policy_id

    async def create_pricing_policy(self, body: wire.PricingPolicyCreate, *, actor: str) -> int:
        """The new pricing policy's id; `PolicyExists` when the name is taken."""
        await self._record_policy(f"pricing_policy:{body.name}", body, actor=actor)
        policy_id = await records.create_pricing_policy(
            self._pool,
            name=body.name,
            margin_bps=body.margin_bps,
            fee_bps=body.fee_bps,
            fee_fixed_usd_minor=body.fee_fixed_usd_minor,
        )
        if policy_id is None:
            raise PolicyExists(f"a pricing policy named {body.name!r} exists")
        return policy_id

    async def _record_policy(self, target: str, body: msgspec.Struct, *, actor: str) -> None:
        await record_admin_action(
            self._pool,
            actor=actor,
            action="policy.create",
            target=target,
            details=msgspec.to_builtins(body),
        )


def tenant_view(tenant: TenantRecord) -> wire.Tenant:
    return wire.Tenant(
        id=tenant.id,
        name=tenant.name,
        tier=tenant.limit_policy,
        pricing_policy=tenant.pricing_policy,
        limit_policy=tenant.limit_policy,
        compliance_region=tenant.compliance_region,
        status=tenant.status,
        requests_per_minute=tenant.requests_per_minute,
        daily_limit_usd_minor=tenant.daily_limit_usd_minor,
        margin_bps=tenant.margin_bps,
        created_at=tenant.created_at,
    )


def api_key_view(key: ApiKeyRecord, *, secret: str | None = None) -> wire.ApiKey:
    """A key as the admin plane shows it: never its hash, its secret only when just issued."""
    return wire.ApiKey(
        id=key.id,
        tenant_id=key.tenant_id,
        role=key.role,
        prefix=key.prefix,
        created_at=key.created_at,
        revoked_at=key.revoked_at,
        secret=secret,
    )
