"""Customer routes: create a customer, read one, and list them (by external id or email
too). The personal data in the answers is opened from its sealed form for each request."""

from __future__ import annotations

from typing import Any, Final

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery

from compliance.freezes.service import ensure_active
from gateway.customers import wire
from gateway.customers.records import customers_page_max
from gateway.customers.service import check_country, id_prefix, view
from gateway.http.ids import decode_id
from gateway.http.openapi import ParameterSchemas, RequestExamples, ResponseLinks
from gateway.http.paging import (
    limit_schema,
    page_limit_or_422,
    page_request,
    position_cursor_schema,
    positions,
)
from gateway.http.problems import invalid
from gateway.http.requests import decode_body, json_response, principal_of, request_body
from gateway.runtime import runtime_of


@post("/v1/customers", summary="Add a customer", tags=["customers"])
async def create_customer(request: Request[Any, Any, Any]) -> Response[bytes]:
    runtime = runtime_of(request)
    principal = principal_of(request)
    ensure_active(principal)
    body = decode_body(await request_body(request), wire.CustomerCreate)
    check_country(body.country)

    async def execute(customer_id: int) -> tuple[int, msgspec.Struct]:
        record = await runtime.customers.create(
            tenant_id=principal.tenant_id,
            region=principal.compliance_region,
            customer_id=customer_id,
            body=body,
        )
        return 201, view(record)

    return await runtime.idempotency.response(request, kind="customer", execute=execute)


@get("/v1/customers/{customer_id:str}", summary="A customer", tags=["customers"])
async def read_customer(
    request: Request[Any, Any, Any], customer_id: FromPath[str]
) -> Response[bytes]:
    record = await runtime_of(request).customers.get(
        tenant_id=principal_of(request).tenant_id, customer_id=decode_id(id_prefix, customer_id)
    )
    return json_response(200, view(record))


@get("/v1/customers", summary="The tenant's customers", tags=["customers"])
async def list_customers(
    request: Request[Any, Any, Any],
    external_id: FromQuery[str | None] = None,
    email: FromQuery[str | None] = None,
    limit: FromQuery[int] = 50,
    cursor: FromQuery[str | None] = None,
) -> Response[bytes]:
    page_limit_or_422(limit, limit_max=customers_page_max)
    _check_length("external_id", external_id, 1, wire.external_id_length_max)
    _check_length("email", email, 1, wire.email_length_max)
    principal = principal_of(request)
    page = await runtime_of(request).customers.list(
        tenant_id=principal.tenant_id,
        region=principal.compliance_region,
        page=page_request(positions, limit=limit, cursor=cursor, limit_max=customers_page_max),
        external_id=external_id,
        email=email,
    )
    return json_response(
        200, wire.CustomerPage(data=[view(r) for r in page.items], next_cursor=page.next_cursor)
    )


def _check_length(name: str, value: str | None, length_min: int, length_max: int) -> None:
    """A 422 naming the query parameter when it is given and of no length a customer's
    value can have (no customer has it, and the document says so)."""
    if value is not None and not length_min <= len(value) <= length_max:
        raise invalid(
            name,
            detail=f"{name} is out of range",
            message=f"must be {length_min} to {length_max} characters",
        )


route_handlers: Final = (create_customer, read_customer, list_customers)
# Request and response bodies by operation, for the OpenAPI document (handlers decode and
# encode bodies themselves).
request_bodies: Final[dict[tuple[str, str], type[msgspec.Struct]]] = {
    ("/v1/customers", "post"): wire.CustomerCreate,
}
response_bodies: Final[dict[tuple[str, str], tuple[str, type[msgspec.Struct]]]] = {
    ("/v1/customers", "post"): ("201", wire.Customer),
    ("/v1/customers", "get"): ("200", wire.CustomerPage),
    ("/v1/customers/{customer_id}", "get"): ("200", wire.Customer),
}
parameter_schemas: Final[ParameterSchemas] = {
    ("/v1/customers", "external_id"): {
        "type": "string",
        "minLength": 1,
        "maxLength": wire.external_id_length_max,
    },
    ("/v1/customers", "email"): {
        "type": "string",
        "minLength": 1,
        "maxLength": wire.email_length_max,
    },
    ("/v1/customers", "limit"): limit_schema(customers_page_max),
    ("/v1/customers", "cursor"): position_cursor_schema,
}
request_examples: Final[RequestExamples] = {
    ("/v1/customers", "post"): {
        "name": "Adaeze Okafor",
        "email": "adaeze@example.com",
        "country": "NG",
        "external_id": "user-8812",
    },
}
response_links: Final[ResponseLinks] = {
    ("/v1/customers", "post"): {
        "GetCustomer": (
            ("/v1/customers/{customer_id}", "get"),
            {"customer_id": "$response.body#/id"},
        ),
    },
}
