"""Freezing a tenant or a recipient: shared by the admin API and the CLI, always audited.

A frozen tenant moves no money (its requests are refused with `tenant_frozen` as soon as
Redis has its new status); a frozen recipient receives no new transfers
(`recipient_frozen`). Payouts already under way are not recalled.
"""

from __future__ import annotations

import uuid

from gateway.db.records import record_admin_action
from gateway.db.tenancy import TenantRecord, get_tenant, set_tenant_status
from gateway.services import Services
from gateway.tenants import publish_tenant
from gateway.transfers.recipients import recipient_cache_key

statuses = ("active", "frozen")


async def set_tenant_freeze(
    services: Services, *, tenant_id: int, status: str, actor: str
) -> TenantRecord | None:
    """The tenant after the change; None if there is no such tenant."""
    if await get_tenant(services.pool, tenant_id) is None:
        return None
    await record_admin_action(
        services.pool,
        actor=actor,
        action=f"tenant.{status}",
        target=f"tenant:{tenant_id}",
        details={"status": status},
    )
    await set_tenant_status(services.pool, tenant_id=tenant_id, status=status)
    tenant = await get_tenant(services.pool, tenant_id)
    if tenant is not None:
        await publish_tenant(services, tenant)
    return tenant


async def set_recipient_freeze(
    services: Services, *, tenant_id: int, recipient_id: int, status: str, actor: str
) -> bool:
    """Freeze or unfreeze the tenant's recipient; False if it does not exist."""
    if status not in statuses:
        raise ValueError("status must be active or frozen")
    changed = await services.pool.fetchval(
        "UPDATE recipients SET status = $3 WHERE tenant_id = $1 AND id = $2 RETURNING id",
        tenant_id,
        uuid.UUID(int=recipient_id),
        status,
    )
    if changed is None:
        return False
    await record_admin_action(
        services.pool,
        actor=actor,
        action=f"recipient.{status}",
        target=f"recipient:{uuid.UUID(int=recipient_id)}",
        details={"tenant_id": tenant_id, "status": status},
    )
    await services.redis.delete(recipient_cache_key(tenant_id, recipient_id))
    return True
