"""Pulls and orchestration runs for tenants: start a pull under a customer's mandate, read a
run with its steps, lines and orders, list runs."""

from __future__ import annotations

from typing import Any, Final

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery

from compliance.freezes.service import ensure_active
from gateway.http.ids import decode_id, id_pattern
from gateway.http.openapi import ParameterSchemas, RequestExamples, ResponseLinks, enum_schema
from gateway.http.paging import (
    limit_schema,
    page_limit_or_422,
    page_request,
    position_cursor_schema,
    positions,
)
from gateway.http.problems import ProblemError, invalid
from gateway.http.requests import decode_body, json_response, principal_of, request_body
from gateway.orchestrations import wire
from gateway.orchestrations.views import customer_prefix, mandate_prefix, orchestration_prefix
from gateway.runtime import runtime_of

page_max = 100
pulls_path = "/v1/customers/{customer_id}/pulls"


def _filter_id(prefix: str, name: str, text: str) -> int:
    """An id in a filter: a malformed one is a 422 naming the parameter."""
    try:
        return decode_id(prefix, text)
    except ProblemError:  # decode_id answers 404, for a path; a field is a 422.
        raise invalid(
            name, detail=f"{name} is not an id", message=f"an id starting {prefix}_"
        ) from None


@post(
    "/v1/customers/{customer_id:str}/pulls",
    summary="Pull an amount under a customer's mandate and run it through their rules",
    tags=["orchestrations"],
)
async def create_pull(
    request: Request[Any, Any, Any], customer_id: FromPath[str]
) -> Response[bytes]:
    runtime = runtime_of(request)
    principal = principal_of(request)
    ensure_active(principal)
    customer = decode_id(customer_prefix, customer_id)
    body = decode_body(await request_body(request), wire.PullCreate)
    # The document gives the id's pattern (`MandateId`): one of that shape naming no mandate
    # is `not_found`, as any other id naming no object of the tenant's.
    mandate = decode_id(mandate_prefix, body.mandate_id)

    async def execute(orchestration_id: int) -> tuple[int, msgspec.Struct]:
        created = await runtime.orchestrations.pull(
            principal,
            customer_id=customer,
            mandate_id=mandate,
            orchestration_id=orchestration_id,
            body=body,
        )
        return 201, created

    return await runtime.idempotency.response(request, kind="pull", execute=execute)


@get(
    "/v1/orchestrations/{orchestration_id:str}",
    summary="An orchestration run, every step with its state",
    tags=["orchestrations"],
)
async def read_orchestration(
    request: Request[Any, Any, Any], orchestration_id: FromPath[str]
) -> Response[bytes]:
    run = await runtime_of(request).orchestrations.read(
        principal_of(request), decode_id(orchestration_prefix, orchestration_id)
    )
    return json_response(200, run)


@get("/v1/orchestrations", summary="The tenant's orchestration runs", tags=["orchestrations"])
async def list_orchestrations(
    request: Request[Any, Any, Any],
    customer_id: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
    limit: FromQuery[int] = 50,
    cursor: FromQuery[str | None] = None,
) -> Response[bytes]:
    page_limit_or_422(limit, limit_max=page_max)
    customer = (
        None if customer_id is None else _filter_id(customer_prefix, "customer_id", customer_id)
    )
    if status is not None and status not in wire.orchestration_statuses:
        raise invalid("status", detail="unknown status", message="not an orchestration status")
    page = await runtime_of(request).orchestrations.list(
        principal_of(request),
        customer_id=customer,
        status=status,
        page=page_request(positions, limit=limit, cursor=cursor, limit_max=page_max),
    )
    return json_response(200, wire.OrchestrationPage(data=page.items, next_cursor=page.next_cursor))


route_handlers: Final = (create_pull, read_orchestration, list_orchestrations)
request_bodies: Final[dict[tuple[str, str], type[msgspec.Struct]]] = {
    (pulls_path, "post"): wire.PullCreate,
}
response_bodies: Final[dict[tuple[str, str], tuple[str, type[msgspec.Struct]]]] = {
    (pulls_path, "post"): ("201", wire.Orchestration),
    ("/v1/orchestrations", "get"): ("200", wire.OrchestrationPage),
    ("/v1/orchestrations/{orchestration_id}", "get"): ("200", wire.Orchestration),
}
parameter_schemas: Final[ParameterSchemas] = {
    ("/v1/orchestrations", "customer_id"): {
        "type": "string",
        "pattern": id_pattern(customer_prefix),
    },
    ("/v1/orchestrations", "status"): enum_schema(wire.orchestration_statuses),
    ("/v1/orchestrations", "limit"): limit_schema(page_max),
    ("/v1/orchestrations", "cursor"): position_cursor_schema,
}
request_examples: Final[RequestExamples] = {
    (pulls_path, "post"): {
        "mandate_id": "mdt_01JD3XK5Q8N2P7R4S6T9V0W1Y2",
        "amount": 250000,
        "reference": "March salary split",
    },
}
_orchestration_id = {"orchestration_id": "$response.body#/id"}
response_links: Final[ResponseLinks] = {
    (pulls_path, "post"): {
        "GetOrchestration": (("/v1/orchestrations/{orchestration_id}", "get"), _orchestration_id),
    },
}
