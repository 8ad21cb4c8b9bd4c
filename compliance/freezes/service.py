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

import asyncpg
import msgspec

from compliance.audit.chain import record_admin_action
from compliance.freezes.errors import TenantFrozen
from gateway.http.ratelimit import Principal
from gateway.tenancy.records import TenantRecord, get_tenant, set_tenant_status, tenant_statuses
from gateway.tenancy.service import Tenancy
from gateway.transfers.recipients import Recipients

statuses = tenant_statuses


def ensure_active(principal: Principal) -> None:
    """Refuse anything that moves money for a frozen tenant (`tenant_frozen`)."""
    if principal.status != "active":
        raise TenantFrozen("this tenant is frozen: no money can move")


class Freezes:
    """Freezing and unfreezing tenants and recipients, audited, fail-safe in Redis first."""

    def __init__(self, *, pool: asyncpg.Pool, tenancy: Tenancy, recipients: Recipients) -> None:
        self._pool = pool
        self._tenancy = tenancy
        self._recipients = recipients

    async def set_tenant_status(
        self, *, tenant_id: int, status: str, actor: str
    ) -> TenantRecord | None:
        """The tenant after the change; None if there is no such tenant."""
        tenant = await get_tenant(self._pool, tenant_id)
        if tenant is None:
            return None
        await record_admin_action(
            self._pool,
            actor=actor,
            action=f"tenant.{status}",
            target=f"tenant:{tenant_id}",
            details={"status": status},
        )
        if status == "frozen":
            # Fail safe: Redis (what requests consult) says frozen before Postgres does, so
            # a crash in between leaves the tenant frozen, never a frozen tenant still
            # moving money.
            await self._tenancy.publish(msgspec.structs.replace(tenant, status="frozen"))
        await set_tenant_status(self._pool, tenant_id=tenant_id, status=status)
        changed = await get_tenant(self._pool, tenant_id)
        if changed is not None:
            await self._tenancy.publish(changed)
        return changed

    async def set_recipient_status(
        self, *, tenant_id: int, recipient_id: int, status: str, actor: str
    ) -> bool:
        """Freeze or unfreeze the tenant's recipient; False if it does not exist."""
        if status not in statuses:
            raise ValueError("status must be active or frozen")
        region = await self._pool.fetchval(
            "SELECT compliance_region FROM recipients WHERE tenant_id = $1 AND id = $2",
            tenant_id,
            uuid.UUID(int=recipient_id),
        )
        if region is None:
            return False
        await record_admin_action(
            self._pool,
            actor=actor,
            action=f"recipient.{status}",
            target=f"recipient:{uuid.UUID(int=recipient_id)}",
            details={"tenant_id": tenant_id, "status": status},
        )
        if status == "frozen":
            # Fail safe, as for tenants: the cache transfers read says frozen first.
            stored = await self._recipients.load(
                tenant_id=tenant_id, region=region, recipient_id=recipient_id, use_cache=False
            )
            if stored is not None:
                await self._recipients.cache(msgspec.structs.replace(stored, status="frozen"))
        await self._pool.execute(
            "UPDATE recipients SET status = $3 WHERE tenant_id = $1 AND id = $2",
            tenant_id,
            uuid.UUID(int=recipient_id),
            status,
        )
        await self._recipients.load(
            tenant_id=tenant_id, region=region, recipient_id=recipient_id, use_cache=False
        )
        return True
