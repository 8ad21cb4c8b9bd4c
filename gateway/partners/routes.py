"""Partner routes: add a partner (an http partner's signing secret in the answer, once), read
one, and list them. Adding one needs an `admin` key (`gateway.http.roles`): a partner says
where customers' money goes and holds the secret that makes its orders trustworthy."""

from __future__ import annotations

from typing import Any, Final

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery

from compliance.freezes.service import ensure_active
from gateway.http.ids import decode_id
from gateway.http.openapi import ParameterSchemas, RequestExamples, ResponseLinks
from gateway.http.paging import (
    limit_schema,
    page_limit_or_422,
    page_request,
    position_cursor_schema,
    positions,
)
from gateway.http.requests import decode_body, json_response, principal_of, request_body
from gateway.partners import wire
from gateway.partners.records import partners_page_max
from gateway.partners.service import id_prefix, view
from gateway.runtime import runtime_of


@post("/v1/partners", summary="Add a partner institution", tags=["partners"])
async def create_partner(request: Request[Any, Any, Any]) -> Response[bytes]:
    runtime = runtime_of(request)
    principal = principal_of(request)
    ensure_active(principal)
    body = decode_body(await request_body(request), wire.PartnerCreate)

    async def execute(partner_id: int) -> tuple[int, msgspec.Struct]:
        row, secret = await runtime.partners.create(principal, partner_id=partner_id, body=body)
        return 201, view(row, secret=secret)

    return await runtime.idempotency.response(request, kind="partner", execute=execute)


@get("/v1/partners/{partner_id:str}", summary="A partner institution", tags=["partners"])
async def read_partner(
    request: Request[Any, Any, Any], partner_id: FromPath[str]
) -> Response[bytes]:
    row = await runtime_of(request).partners.read(
        tenant_id=principal_of(request).tenant_id, partner_id=decode_id(id_prefix, partner_id)
    )
    return json_response(200, view(row))


@get("/v1/partners", summary="The tenant's partner institutions", tags=["partners"])
async def list_partners(
    request: Request[Any, Any, Any],
    limit: FromQuery[int] = 50,
    cursor: FromQuery[str | None] = None,
) -> Response[bytes]:
    page_limit_or_422(limit, limit_max=partners_page_max)
    page = await runtime_of(request).partners.list_partners(
        tenant_id=principal_of(request).tenant_id,
        page=page_request(positions, limit=limit, cursor=cursor, limit_max=partners_page_max),
    )
    return json_response(
        200, wire.PartnerPage(data=[view(r) for r in page.items], next_cursor=page.next_cursor)
    )


route_handlers: Final = (create_partner, read_partner, list_partners)
# Request and response bodies by operation, for the OpenAPI document (handlers decode and
# encode bodies themselves).
request_bodies: Final[dict[tuple[str, str], type[msgspec.Struct]]] = {
    ("/v1/partners", "post"): wire.PartnerCreate,
}
response_bodies: Final[dict[tuple[str, str], tuple[str, type[msgspec.Struct]]]] = {
    ("/v1/partners", "post"): ("201", wire.Partner),
    ("/v1/partners", "get"): ("200", wire.PartnerPage),
    ("/v1/partners/{partner_id}", "get"): ("200", wire.Partner),
}
parameter_schemas: Final[ParameterSchemas] = {
    ("/v1/partners", "limit"): limit_schema(partners_page_max),
    ("/v1/partners", "cursor"): position_cursor_schema,
}
request_examples: Final[RequestExamples] = {
    ("/v1/partners", "post"): {
        "kind": "savings",
        "name": "Nordbank Savings",
        "currency": "EUR",
        "adapter": "http",
        "reference": "KOVRA-TENANT-0042",
        "url": "https://partners.nordbank.example/kovra/orders",
    },
}
response_links: Final[ResponseLinks] = {
    ("/v1/partners", "post"): {
        "GetPartner": (
            ("/v1/partners/{partner_id}", "get"),
            {"partner_id": "$response.body#/id"},
        ),
    },
}
