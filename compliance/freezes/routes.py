"""The admin plane's freeze routes: a tenant's or a recipient's status."""

from __future__ import annotations

from typing import Any, Final

import msgspec
from litestar import Request, Response, put
from litestar.params import FromPath

from compliance.freezes import wire
from gateway.http.ids import RowIdPath, decode_id
from gateway.http.openapi import RequestExamples
from gateway.http.problems import ProblemError
from gateway.http.requests import admin_actor_of, decode_body, json_response, request_body
from gateway.http.wire import Health
from gateway.runtime import runtime_of
from gateway.tenancy.service import tenant_view
from gateway.tenancy.wire import Tenant


@put("/admin/v1/tenants/{tenant_id:int}/status", summary="Freeze or unfreeze", tags=["admin"])
async def update_status(request: Request[Any, Any, Any], tenant_id: RowIdPath) -> Response[bytes]:
    body = decode_body(await request_body(request), wire.TenantStatusUpdate)
    tenant = await runtime_of(request).freezes.set_tenant_status(
        tenant_id=tenant_id, status=body.status, actor=admin_actor_of(request)
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
    request: Request[Any, Any, Any], tenant_id: RowIdPath, recipient_id: FromPath[str]
) -> Response[bytes]:
    body = decode_body(await request_body(request), wire.TenantStatusUpdate)
    changed = await runtime_of(request).freezes.set_recipient_status(
        tenant_id=tenant_id,
        recipient_id=decode_id("rcp", recipient_id),
        status=body.status,
        actor=admin_actor_of(request),
    )
    if not changed:
        raise ProblemError(404, "not_found", f"no recipient {recipient_id[:64]}")
    return json_response(200, Health(status=body.status))


route_handlers: Final = (update_status, update_recipient_status)
request_bodies: Final[dict[tuple[str, str], type[msgspec.Struct]]] = {
    ("/admin/v1/tenants/{tenant_id}/status", "put"): wire.TenantStatusUpdate,
    ("/admin/v1/tenants/{tenant_id}/recipients/{recipient_id}/status", "put"): (
        wire.TenantStatusUpdate
    ),
}
response_bodies: Final[dict[tuple[str, str], tuple[str, type[msgspec.Struct]]]] = {
    ("/admin/v1/tenants/{tenant_id}/status", "put"): ("200", Tenant),
    ("/admin/v1/tenants/{tenant_id}/recipients/{recipient_id}/status", "put"): ("200", Health),
}

request_examples: Final[RequestExamples] = {
    ("/admin/v1/tenants/{tenant_id}/status", "put"): {"status": "frozen"},
    ("/admin/v1/tenants/{tenant_id}/recipients/{recipient_id}/status", "put"): {"status": "active"},
}
