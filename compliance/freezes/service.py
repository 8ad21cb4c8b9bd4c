"""Freezing a tenant or a recipient: shared by the admin API and the CLI, always audited.

A frozen tenant moves no money (its requests are refused with `tenant_frozen` as soon as
Redis has its new status); a frozen recipient receives no new transfers
(`recipient_frozen`). Payouts already under way are not recalled.

Each change is audited before it is made (write-ahead), and a freeze reaches Redis, which
the request path reads instead of Postgres, before Postgres, so no crash can leave a frozen
party able to move money; an unfreeze reaches Postgres first, for the same reason.
"""

from __future__ import annotations

import uuid

import msgspec

from gateway.http.problems import ProblemError
from gateway.http.ratelimit import Principal
from gateway.infra.database.records import record_admin_action
from gateway.runtime import Services
from gateway.tenancy.records import TenantRecord, get_tenant, set_tenant_status, tenant_statuses
from gateway.tenancy.service import publish_tenant
from gateway.transfers.recipients import cache_recipient, load_recipient

statuses = tenant_statuses


def ensure_active(principal: Principal) -> None:
    """Refuse anything that moves money for a frozen tenant (`tenant_frozen`)."""
    if principal.status != "active":
        raise ProblemError(403, "tenant_frozen", "this tenant is frozen: no money can move")


async def set_tenant_freeze(
    services: Services, *, tenant_id: int, status: str, actor: str
) -> TenantRecord | None:
    """The tenant after the change; None if there is no such tenant."""
    tenant = await get_tenant(services.pool, tenant_id)
    if tenant is None:
        return None
    await record_admin_action(
        services.pool,
        actor=actor,
        action=f"tenant.{status}",
        target=f"tenant:{tenant_id}",
        details={"status": status},
    )
    if status == "frozen":
        # Fail safe: Redis (what requests consult) says frozen before Postgres does, so a
        # crash in between leaves the tenant frozen, never a frozen tenant still moving money.
        await publish_tenant(services, msgspec.structs.replace(tenant, status="frozen"))
    await set_tenant_status(services.pool, tenant_id=tenant_id, status=status)
    changed = await get_tenant(services.pool, tenant_id)
    if changed is not None:
        await publish_tenant(services, changed)
    return changed


async def set_recipient_freeze(
    services: Services, *, tenant_id: int, recipient_id: int, status: str, actor: str
) -> bool:
    """Freeze or unfreeze the tenant's recipient; False if it does not exist."""
    if status not in statuses:
        raise ValueError("status must be active or frozen")
    region = await services.pool.fetchval(
        "SELECT compliance_region FROM recipients WHERE tenant_id = $1 AND id = $2",
        tenant_id,
        uuid.UUID(int=recipient_id),
    )
    if region is None:
        return False
    await record_admin_action(
        services.pool,
        actor=actor,
        action=f"recipient.{status}",
        target=f"recipient:{uuid.UUID(int=recipient_id)}",
        details={"tenant_id": tenant_id, "status": status},
    )
    if status == "frozen":
        # Fail safe, as for tenants: the cache transfers read says frozen first.
        stored = await load_recipient(
            services, tenant_id=tenant_id, region=region, recipient_id=recipient_id, use_cache=False
        )
        if stored is not None:
            await cache_recipient(services, msgspec.structs.replace(stored, status="frozen"))
    await services.pool.execute(
        "UPDATE recipients SET status = $3 WHERE tenant_id = $1 AND id = $2",
        tenant_id,
        uuid.UUID(int=recipient_id),
        status,
    )
    await load_recipient(
        services, tenant_id=tenant_id, region=region, recipient_id=recipient_id, use_cache=False
    )
    return True
