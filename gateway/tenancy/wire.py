"""The JSON shapes of the admin plane's tenants, API keys and policies."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from gateway.http import ratelimit
from gateway.http.wire import Timestamp

Tier = Literal["starter", "growth", "enterprise"]
Role = Literal["admin", "operator", "read_only", "compliance"]
Region = Literal["EU", "UK", "ID"]
PolicyName = Annotated[str, Meta(min_length=1, max_length=64)]
TenantName = Annotated[str, Meta(min_length=1, max_length=200)]


class TenantCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: TenantName
    tier: Tier = "starter"
    compliance_region: Region = "EU"


class ApiKeyCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    role: Role = "operator"


class PoliciesUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pricing_policy: PolicyName
    limit_policy: PolicyName


class LimitPolicyCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: PolicyName
    requests_per_minute: Annotated[int, Meta(ge=1, le=ratelimit.requests_per_minute_max)]
    # At least one minor unit: the rate limiter keeps only positive limits, and a tenant that
    # must not pay out at all is frozen, not given a limit of nothing.
    daily_limit_usd_minor: Annotated[int, Meta(ge=1, le=10**15)]


class PricingPolicyCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: PolicyName
    margin_bps: Annotated[int, Meta(ge=0, le=10_000)]
    fee_bps: Annotated[int, Meta(ge=0, le=10_000)] = 0
    fee_fixed_usd_minor: Annotated[int, Meta(ge=0, le=10**9)] = 0


class Tenant(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    name: str
    tier: str
    pricing_policy: str
    limit_policy: str
    compliance_region: str
    status: str
    requests_per_minute: int
    daily_limit_usd_minor: int
    margin_bps: int
    created_at: Timestamp


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    tenant_id: int
    role: str
    prefix: str
    created_at: Timestamp
    revoked_at: Timestamp | None
    secret: str | None = None


class TenantPage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[Tenant]
    next_cursor: str | None


class ApiKeyPage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[ApiKey]
    next_cursor: str | None


class TenantCreated(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: int
    api_key: str
    tenant: Tenant


class Policy(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    name: str
    kind: Literal["limit", "pricing"]
