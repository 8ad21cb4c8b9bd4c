"""Each tenant's pricing and limit terms, cached per process for a short time.

Quotes need the tenant's margin and fee, and payouts its daily limit, on every request;
reading Postgres each time would put a database read on the request path. Policy changes
reach every process within `pricing_cache_seconds`.
"""

from __future__ import annotations

import time

import asyncpg
import msgspec

from fx.pricing import Pricing

pricing_cache_seconds = 30
pricing_cache_size_max = 100_000


class TenantTerms(msgspec.Struct, frozen=True, kw_only=True):
    """What pricing and limits say about a tenant: its margin, fee, tier and daily limit."""

    pricing: Pricing
    tier: str
    daily_limit_usd_minor: int


class PricingCache:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._entries: dict[int, tuple[float, TenantTerms]] = {}

    async def pricing(self, tenant_id: int) -> Pricing:
        return (await self.terms(tenant_id)).pricing

    async def terms(self, tenant_id: int) -> TenantTerms:
        entry = self._entries.get(tenant_id)
        now = time.monotonic()
        if entry is not None and entry[0] > now:
            return entry[1]
        row = await self._pool.fetchrow(
            """SELECT p.margin_bps, p.fee_bps, p.fee_fixed_usd_minor, l.name AS tier,
                      l.daily_limit_usd_minor
                 FROM tenants t JOIN pricing_policies p ON p.id = t.pricing_policy_id
                 JOIN limit_policies l ON l.id = t.limit_policy_id
                WHERE t.id = $1""",
            tenant_id,
        )
        if row is None:
            raise LookupError(f"tenant {tenant_id} has no pricing policy")
        terms = TenantTerms(
            pricing=Pricing(
                margin_bps=row["margin_bps"],
                fee_bps=row["fee_bps"],
                fee_fixed_usd_minor=row["fee_fixed_usd_minor"],
            ),
            tier=row["tier"],
            daily_limit_usd_minor=row["daily_limit_usd_minor"],
        )
        if len(self._entries) >= pricing_cache_size_max:
            self._entries.clear()  # Bounded memory; the next reads refill it.
        self._entries[tenant_id] = (now + pricing_cache_seconds, terms)
        return terms
