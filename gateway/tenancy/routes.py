"""The admin plane (`/admin/v1`): tenants, API keys, policies, freezes, liquidity, rates.
Every action is recorded in the hash-chained audit trail (`audit_records`) with who did what
to which target, before it is answered."""

from __future__ import annotations

import datetime
from typing import Any

import msgspec
from litestar import Request, Response, delete, get, post, put
from litestar.params import FromPath, FromQuery

from compliance.freezes.service import set_recipient_freeze, set_tenant_freeze
from fx.sources import TableRateSource, parse_table
from gateway.http import wire
from gateway.http.ids import decode_id, encode_id, utc_from_ns
from gateway.http.paging import decode_number_cursor, page_limit_or_422
from gateway.http.problems import FieldError, ProblemError
from gateway.http.requests import decode_body, json_response, request_body, services_of
from gateway.infra.database.records import record_admin_action
from gateway.tenancy.records import (
    ApiKeyRecord,
    TenantRecord,
    admin_page_max,
    create_limit_policy,
    create_pricing_policy,
    get_tenant,
    list_api_keys,
    list_tenants,
    revoke_api_key,
    set_tenant_policies,
    tenant_statuses,
)
from gateway.tenancy.service import create_tenant_with_key, issue_api_key, publish_tenant
from ledger.transfers import new_object_id


def _actor(request: Request[Any, Any, Any]) -> str:
    actor: str = request.scope["state"]["admin_actor"]
    return actor


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


async def _tenant_or_404(request: Request[Any, Any, Any], tenant_id: int) -> TenantRecord:
    tenant = await get_tenant(services_of(request).pool, tenant_id)
    if tenant is None:
        raise ProblemError(404, "not_found", f"no tenant {tenant_id}")
    return tenant


@post("/admin/v1/tenants", summary="Create a tenant and its first API key", tags=["admin"])
async def create_tenant(request: Request[Any, Any, Any]) -> Response[bytes]:
    services = services_of(request)
    body = decode_body(await request_body(request), wire.TenantCreate)
    tenant, secret = await create_tenant_with_key(
        services,
        name=body.name,
        tier=body.tier,
        compliance_region=body.compliance_region,
        actor=_actor(request),
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
    page_limit_or_422(limit, limit_max=admin_page_max)
    if status is not None and status not in tenant_statuses:
        raise ProblemError(
            422,
            "validation_error",
            "unknown status",
            errors=[FieldError(field="status", message="must be active or frozen")],
        )
    tenants = await list_tenants(
        services_of(request).pool, limit=limit, after_id=decode_number_cursor(cursor), status=status
    )
    next_cursor = str(tenants[-1].id) if len(tenants) == limit else None
    return json_response(
        200, wire.TenantPage(data=[tenant_view(t) for t in tenants], next_cursor=next_cursor)
    )


@get(
    "/admin/v1/tenants/{tenant_id:int}/api-keys",
    summary="A tenant's API keys (never their secrets)",
    tags=["admin"],
)
async def list_keys(
    request: Request[Any, Any, Any],
    tenant_id: FromPath[int],
    limit: FromQuery[int] = 100,
    cursor: FromQuery[str | None] = None,
) -> Response[bytes]:
    page_limit_or_422(limit, limit_max=admin_page_max)
    tenant = await _tenant_or_404(request, tenant_id)
    keys = await list_api_keys(
        services_of(request).pool,
        tenant_id=tenant.id,
        limit=limit,
        after_id=decode_number_cursor(cursor),
    )
    next_cursor = str(keys[-1].id) if len(keys) == limit else None
    return json_response(
        200, wire.ApiKeyPage(data=[api_key_view(k) for k in keys], next_cursor=next_cursor)
    )


@get("/admin/v1/tenants/{tenant_id:int}", summary="A tenant", tags=["admin"])
async def read_tenant(request: Request[Any, Any, Any], tenant_id: FromPath[int]) -> Response[bytes]:
    return json_response(200, tenant_view(await _tenant_or_404(request, tenant_id)))


@put("/admin/v1/tenants/{tenant_id:int}/policies", summary="Link other policies", tags=["admin"])
async def update_policies(
    request: Request[Any, Any, Any], tenant_id: FromPath[int]
) -> Response[bytes]:
    services = services_of(request)
    body = decode_body(await request_body(request), wire.PoliciesUpdate)
    await record_admin_action(
        services.pool,
        actor=_actor(request),
        action="tenant.policies",
        target=f"tenant:{tenant_id}",
        details={"pricing_policy": body.pricing_policy, "limit_policy": body.limit_policy},
    )
    try:
        tenant = await set_tenant_policies(
            services.pool,
            tenant_id=tenant_id,
            pricing_policy=body.pricing_policy,
            limit_policy=body.limit_policy,
        )
    except Exception as error:  # A policy name that does not exist violates NOT NULL.
        raise ProblemError(422, "validation_error", f"unknown policy: {error}") from None
    if tenant is None:
        raise ProblemError(404, "not_found", f"no tenant {tenant_id}")
    await publish_tenant(services, tenant)
    return json_response(200, tenant_view(tenant))


@put("/admin/v1/tenants/{tenant_id:int}/status", summary="Freeze or unfreeze", tags=["admin"])
async def update_status(
    request: Request[Any, Any, Any], tenant_id: FromPath[int]
) -> Response[bytes]:
    body = decode_body(await request_body(request), wire.TenantStatusUpdate)
    tenant = await set_tenant_freeze(
        services_of(request), tenant_id=tenant_id, status=body.status, actor=_actor(request)
    )
    if tenant is None:
        raise ProblemError(404, "not_found", f"no tenant {tenant_id}")
    return json_response(200, tenant_view(tenant))


@put(
    "/admin/v1/tenants/{tenant_id:int}/recipients/{recipient_id:str}/status",
    summary="Freeze or unfreeze a recipient",
    tags=["admin"],
)
async def update_recipient_status(
    request: Request[Any, Any, Any], tenant_id: FromPath[int], recipient_id: FromPath[str]
) -> Response[bytes]:
    body = decode_body(await request_body(request), wire.TenantStatusUpdate)
    changed = await set_recipient_freeze(
        services_of(request),
        tenant_id=tenant_id,
        recipient_id=decode_id("rcp", recipient_id),
        status=body.status,
        actor=_actor(request),
    )
    if not changed:
        raise ProblemError(404, "not_found", f"no recipient {recipient_id[:64]}")
    return json_response(200, wire.Health(status=body.status))


@post("/admin/v1/tenants/{tenant_id:int}/api-keys", summary="Issue an API key", tags=["admin"])
async def create_key(request: Request[Any, Any, Any], tenant_id: FromPath[int]) -> Response[bytes]:
    services = services_of(request)
    body = decode_body(await request_body(request), wire.ApiKeyCreate)
    tenant = await _tenant_or_404(request, tenant_id)
    key, secret = await issue_api_key(
        services, tenant=tenant, role=body.role, actor=_actor(request)
    )
    return json_response(201, api_key_view(key, secret=secret))


@delete(
    "/admin/v1/tenants/{tenant_id:int}/api-keys/{key_id:int}",
    summary="Revoke a key",
    tags=["admin"],
    status_code=200,
)
async def revoke_key(
    request: Request[Any, Any, Any], tenant_id: FromPath[int], key_id: FromPath[int]
) -> Response[bytes]:
    services = services_of(request)
    await record_admin_action(
        services.pool,
        actor=_actor(request),
        action="api_key.revoke",
        target=f"api_key:{key_id}",
        details={"tenant_id": tenant_id},
    )
    key = await revoke_api_key(services.pool, key_id=key_id, tenant_id=tenant_id)
    if key is None:
        raise ProblemError(404, "not_found", f"no API key {key_id} for tenant {tenant_id}")
    await services.limiter.revoke_api_key(key_hash_hex=key.key_hash.hex())
    return json_response(200, api_key_view(key))


@post("/admin/v1/liquidity", summary="Fund the platform's FX position", tags=["admin"])
async def fund_liquidity(request: Request[Any, Any, Any]) -> Response[bytes]:
    services = services_of(request)
    body = decode_body(await request_body(request), wire.LiquidityFund)
    funding_id = new_object_id()
    await record_admin_action(
        services.pool,
        actor=_actor(request),
        action="liquidity.fund",
        target=f"currency:{body.currency.upper()}",
        details={"amount": body.amount, "funding_id": funding_id, "reference": body.reference},
    )
    posted = await services.ledger.fund_liquidity(
        funding_id=funding_id, currency_code=body.currency, amount_minor=body.amount
    )
    return json_response(
        201,
        wire.Funding(
            id=encode_id("fund", funding_id),
            currency=body.currency.upper(),
            amount=body.amount,
            created_at=utc_from_ns(posted.timestamp_ns),
        ),
    )


@post("/admin/v1/limit-policies", summary="Create a limit policy", tags=["admin"])
async def create_limit(request: Request[Any, Any, Any]) -> Response[bytes]:
    services = services_of(request)
    body = decode_body(await request_body(request), wire.LimitPolicyCreate)
    await record_admin_action(
        services.pool,
        actor=_actor(request),
        action="policy.create",
        target=f"limit_policy:{body.name}",
        details=msgspec.to_builtins(body),
    )
    policy_id = await create_limit_policy(
        services.pool,
        name=body.name,
        requests_per_minute=body.requests_per_minute,
        daily_limit_usd_minor=body.daily_limit_usd_minor,
    )
    if policy_id is None:
        raise ProblemError(409, "conflict", f"a limit policy named {body.name!r} exists")
    return json_response(201, wire.Policy(id=policy_id, name=body.name, kind="limit"))


@post("/admin/v1/pricing-policies", summary="Create a pricing policy", tags=["admin"])
async def create_pricing(request: Request[Any, Any, Any]) -> Response[bytes]:
    services = services_of(request)
    body = decode_body(await request_body(request), wire.PricingPolicyCreate)
    await record_admin_action(
        services.pool,
        actor=_actor(request),
        action="policy.create",
        target=f"pricing_policy:{body.name}",
        details=msgspec.to_builtins(body),
    )
    policy_id = await create_pricing_policy(
        services.pool,
        name=body.name,
        margin_bps=body.margin_bps,
        fee_bps=body.fee_bps,
        fee_fixed_usd_minor=body.fee_fixed_usd_minor,
    )
    if policy_id is None:
        raise ProblemError(409, "conflict", f"a pricing policy named {body.name!r} exists")
    return json_response(201, wire.Policy(id=policy_id, name=body.name, kind="pricing"))


@put("/admin/v1/fx-rates", summary="Set rates in the internal rate table", tags=["admin"])
async def update_fx_rates(request: Request[Any, Any, Any]) -> Response[bytes]:
    services = services_of(request)
    body = decode_body(await request_body(request), wire.FxRatesUpdate)
    if not isinstance(services.rate_source, TableRateSource):
        raise ProblemError(409, "conflict", "rates come from the HTTP feed (KOVRA_FX_SOURCE)")
    try:
        rates = parse_table(msgspec.json.encode(body.rates).decode())
    except ValueError as error:
        raise ProblemError(
            422,
            "validation_error",
            str(error),
            errors=[FieldError(field="rates", message=str(error))],
        ) from None
    observed_at = body.observed_at or datetime.datetime.now(tz=datetime.UTC)
    await record_admin_action(
        services.pool,
        actor=_actor(request),
        action="fx.rates",
        target="fx:table",
        details={"rates": body.rates, "observed_at": observed_at},
    )
    await services.rate_source.set_rates(rates, observed_at=observed_at)
    return json_response(200, wire.Health(status="ok"))
