"""The admin plane's tenancy routes (`/admin/v1`): tenants, API keys and policies.

Every action is recorded in the hash-chained audit trail (`audit_records`) with who did what
to which target, before it is answered."""

from __future__ import annotations

from typing import Any, Final

import msgspec
from litestar import Request, Response, delete, get, post, put
from litestar.params import FromQuery

from gateway.http.ids import RowIdPath
from gateway.http.openapi import ParameterSchemas, RequestExamples, enum_schema
from gateway.http.paging import (
    limit_schema,
    number_cursor_schema,
    page_limit_or_422,
    page_request,
    row_ids,
)
from gateway.http.problems import ProblemError, invalid
from gateway.http.requests import admin_actor_of, decode_body, json_response, request_body
from gateway.runtime import runtime_of
from gateway.tenancy import wire
from gateway.tenancy.records import TenantRecord, admin_page_max, tenant_statuses
from gateway.tenancy.service import api_key_view, tenant_view


async def _tenant_or_404(request: Request[Any, Any, Any], tenant_id: int) -> TenantRecord:
    tenant = await runtime_of(request).tenancy.tenant(tenant_id)
    if tenant is None:
        raise ProblemError(404, "not_found", f"no tenant {tenant_id}")
    return tenant


@post("/admin/v1/tenants", summary="Create a tenant and its first API key", tags=["admin"])
async def create_tenant(request: Request[Any, Any, Any]) -> Response[bytes]:
    body = decode_body(await request_body(request), wire.TenantCreate)
    tenant, secret = await runtime_of(request).tenancy.create_tenant_with_key(
        name=body.name,
        tier=body.tier,
        compliance_region=body.compliance_region,
        actor=admin_actor_of(request),
    )
    return json_response(
        201, wire.TenantCreated(tenant_id=tenant.id, api_key=secret, tenant=tenant_view(tenant))
    )


@get("/admin/v1/tenants", summary="Tenants, in id order", tags=["admin"])
async def list_tenants_route(
    request: Request[Any, Any, Any],
    status: FromQuery[str | None] = None,
    limit: FromQuery[int] = 100,
    cursor: FromQuery[str | None] = None,
) -> Response[bytes]:
    # The limit is checked before the status and the cursor after it, as it always was, so a
    # request wrong twice is told about the same field.
    page_limit_or_422(limit, limit_max=admin_page_max)
    if status is not None and status not in tenant_statuses:
        raise invalid("status", detail="unknown status", message="must be active or frozen")
    page = await runtime_of(request).tenancy.tenants(
        status=status,
        page=page_request(row_ids, limit=limit, cursor=cursor, limit_max=admin_page_max),
    )
    return json_response(
        200,
        wire.TenantPage(data=[tenant_view(t) for t in page.items], next_cursor=page.next_cursor),
    )


@get(
    "/admin/v1/tenants/{tenant_id:int}/api-keys",
    summary="A tenant's API keys (never their secrets)",
    tags=["admin"],
)
async def list_keys(
    request: Request[Any, Any, Any],
    tenant_id: RowIdPath,
    limit: FromQuery[int] = 100,
    cursor: FromQuery[str | None] = None,
) -> Response[bytes]:
    # The limit is checked before the tenant is looked up and the cursor after, as always.
    page_limit_or_422(limit, limit_max=admin_page_max)
    tenant = await _tenant_or_404(request, tenant_id)
    page = await runtime_of(request).tenancy.api_keys(
        tenant_id=tenant.id,
        page=page_request(row_ids, limit=limit, cursor=cursor, limit_max=admin_page_max),
    )
    return json_response(
        200,
        wire.ApiKeyPage(data=[api_key_view(k) for k in page.items], next_cursor=page.next_cursor),
    )


@get("/admin/v1/tenants/{tenant_id:int}", summary="A tenant", tags=["admin"])
async def read_tenant(request: Request[Any, Any, Any], tenant_id: RowIdPath) -> Response[bytes]:
    return json_response(200, tenant_view(await _tenant_or_404(request, tenant_id)))


@put("/admin/v1/tenants/{tenant_id:int}/policies", summary="Link other policies", tags=["admin"])
async def update_policies(request: Request[Any, Any, Any], tenant_id: RowIdPath) -> Response[bytes]:
    body = decode_body(await request_body(request), wire.PoliciesUpdate)
    tenant = await runtime_of(request).tenancy.set_policies(
        tenant_id=tenant_id,
        pricing_policy=body.pricing_policy,
        limit_policy=body.limit_policy,
        actor=admin_actor_of(request),
    )
    if tenant is None:
        raise ProblemError(404, "not_found", f"no tenant {tenant_id}")
    return json_response(200, tenant_view(tenant))


@post("/admin/v1/tenants/{tenant_id:int}/api-keys", summary="Issue an API key", tags=["admin"])
async def create_key(request: Request[Any, Any, Any], tenant_id: RowIdPath) -> Response[bytes]:
    body = decode_body(await request_body(request), wire.ApiKeyCreate)
    tenant = await _tenant_or_404(request, tenant_id)
    key, secret = await runtime_of(request).tenancy.issue_api_key(
        tenant=tenant, role=body.role, actor=admin_actor_of(request)
    )
    return json_response(201, api_key_view(key, secret=secret))


@delete(
    "/admin/v1/tenants/{tenant_id:int}/api-keys/{key_id:int}",
    summary="Revoke a key",
    tags=["admin"],
    status_code=200,
)
async def revoke_key(
    request: Request[Any, Any, Any], tenant_id: RowIdPath, key_id: RowIdPath
) -> Response[bytes]:
    key = await runtime_of(request).tenancy.revoke_api_key(
        key_id=key_id, tenant_id=tenant_id, actor=admin_actor_of(request)
    )
    if key is None:
        raise ProblemError(404, "not_found", f"no API key {key_id} for tenant {tenant_id}")
    return json_response(200, api_key_view(key))


@post("/admin/v1/limit-policies", summary="Create a limit policy", tags=["admin"])
async def create_limit(request: Request[Any, Any, Any]) -> Response[bytes]:
    body = decode_body(await request_body(request), wire.LimitPolicyCreate)
    policy_id = await runtime_of(request).tenancy.create_limit_policy(
        body, actor=admin_actor_of(request)
    )
    return json_response(201, wire.Policy(id=policy_id, name=body.name, kind="limit"))


@post("/admin/v1/pricing-policies", summary="Create a pricing policy", tags=["admin"])
async def create_pricing(request: Request[Any, Any, Any]) -> Response[bytes]:
    body = decode_body(await request_body(request), wire.PricingPolicyCreate)
    policy_id = await runtime_of(request).tenancy.create_pricing_policy(
        body, actor=admin_actor_of(request)
    )
    return json_response(201, wire.Policy(id=policy_id, name=body.name, kind="pricing"))


route_handlers: Final = (
    create_tenant,
    list_tenants_route,
    read_tenant,
    list_keys,
    update_policies,
    create_key,
    revoke_key,
    create_limit,
    create_pricing,
)
request_bodies: Final[dict[tuple[str, str], type[msgspec.Struct]]] = {
    ("/admin/v1/tenants", "post"): wire.TenantCreate,
    ("/admin/v1/tenants/{tenant_id}/api-keys", "post"): wire.ApiKeyCreate,
    ("/admin/v1/tenants/{tenant_id}/policies", "put"): wire.PoliciesUpdate,
    ("/admin/v1/limit-policies", "post"): wire.LimitPolicyCreate,
    ("/admin/v1/pricing-policies", "post"): wire.PricingPolicyCreate,
}
response_bodies: Final[dict[tuple[str, str], tuple[str, type[msgspec.Struct]]]] = {
    ("/admin/v1/tenants", "post"): ("201", wire.TenantCreated),
    ("/admin/v1/tenants", "get"): ("200", wire.TenantPage),
    ("/admin/v1/tenants/{tenant_id}", "get"): ("200", wire.Tenant),
    ("/admin/v1/tenants/{tenant_id}/api-keys", "get"): ("200", wire.ApiKeyPage),
    ("/admin/v1/tenants/{tenant_id}/policies", "put"): ("200", wire.Tenant),
    ("/admin/v1/tenants/{tenant_id}/api-keys", "post"): ("201", wire.ApiKey),
    ("/admin/v1/tenants/{tenant_id}/api-keys/{key_id}", "delete"): ("200", wire.ApiKey),
    ("/admin/v1/limit-policies", "post"): ("201", wire.Policy),
    ("/admin/v1/pricing-policies", "post"): ("201", wire.Policy),
}

parameter_schemas: Final[ParameterSchemas] = {
    ("/admin/v1/tenants", "status"): enum_schema(tenant_statuses),
    ("/admin/v1/tenants", "cursor"): number_cursor_schema,
    ("/admin/v1/tenants", "limit"): limit_schema(admin_page_max),
    ("/admin/v1/tenants/{tenant_id}/api-keys", "cursor"): number_cursor_schema,
    ("/admin/v1/tenants/{tenant_id}/api-keys", "limit"): limit_schema(admin_page_max),
}

request_examples: Final[RequestExamples] = {
    ("/admin/v1/tenants", "post"): {
        "name": "Acme Trading GmbH",
        "tier": "growth",
        "compliance_region": "EU",
    },
    ("/admin/v1/tenants/{tenant_id}/api-keys", "post"): {"role": "read_only"},
    ("/admin/v1/tenants/{tenant_id}/policies", "put"): {
        "pricing_policy": "growth",
        "limit_policy": "standard",
    },
    ("/admin/v1/limit-policies", "post"): {
        "name": "standard",
        "requests_per_minute": 600,
        "daily_limit_usd_minor": 50_000_000,
    },
    ("/admin/v1/pricing-policies", "post"): {
        "name": "growth",
        "margin_bps": 35,
        "fee_bps": 10,
        "fee_fixed_usd_minor": 150,
    },
}
