"""The review queue's routes: compliance cases of the tenant (any key may list them), and
decisions on them, which only a `compliance` key (issued by the platform to its compliance
officers, never usable to move money) may make: `gateway.http.roles` says so, and the
middleware enforces it before the handler runs."""

from __future__ import annotations

from typing import Any, Final

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery

from compliance.cases import wire
from compliance.cases.records import cases_page_max, list_cases
from compliance.cases.service import case_view
from gateway.http.ids import decode_id
from gateway.http.openapi import ParameterSchemas, RequestExamples, enum_schema
from gateway.http.paging import limit_schema, page_request, position_cursor_schema, positions
from gateway.http.problems import ProblemError, invalid
from gateway.http.requests import decode_body, json_response, principal_of, request_body
from gateway.runtime import runtime_of

case_statuses = ("open", "approved", "rejected", "all")


@get("/v1/compliance/cases", summary="The review queue", tags=["compliance"])
async def list_cases_route(
    request: Request[Any, Any, Any],
    status: FromQuery[str] = "open",
    limit: FromQuery[int] = 50,
    cursor: FromQuery[str | None] = None,
) -> Response[bytes]:
    if status not in case_statuses:
        raise invalid(
            "status",
            detail="status is not a case status",
            message=f"must be one of {', '.join(case_statuses)}",
        )
    page = await list_cases(
        runtime_of(request).pool,
        tenant_id=principal_of(request).tenant_id,
        status=None if status == "all" else status,
        page=page_request(positions, limit=limit, cursor=cursor, limit_max=cases_page_max),
    )
    return json_response(
        200,
        wire.CaseList(data=[case_view(case) for case in page.items], next_cursor=page.next_cursor),
    )


@post(
    "/v1/compliance/cases/{case_id:str}/decision",
    summary="Approve or reject a case",
    tags=["compliance"],
)
async def decide_case(request: Request[Any, Any, Any], case_id: FromPath[str]) -> Response[bytes]:
    principal = principal_of(request)
    body = decode_body(await request_body(request), wire.CaseDecision)
    cases = runtime_of(request).cases
    case = await cases.case(principal, decode_id("case", case_id))
    if case is None:
        raise ProblemError(404, "not_found", f"no case {case_id[:64]}")
    decided = await cases.decide(
        case,
        decision=body.decision,
        actor=f"tenant:{principal.tenant_id}:key:{principal.key_id}",
        note=body.note,
    )
    if decided is None:
        raise ProblemError(404, "not_found", f"no case {case_id[:64]}")
    return json_response(200, case_view(decided))


route_handlers: Final = (list_cases_route, decide_case)
request_bodies: Final[dict[tuple[str, str], type[msgspec.Struct]]] = {
    ("/v1/compliance/cases/{case_id}/decision", "post"): wire.CaseDecision,
}
response_bodies: Final[dict[tuple[str, str], tuple[str, type[msgspec.Struct]]]] = {
    ("/v1/compliance/cases", "get"): ("200", wire.CaseList),
    ("/v1/compliance/cases/{case_id}/decision", "post"): ("200", wire.Case),
}

parameter_schemas: Final[ParameterSchemas] = {
    ("/v1/compliance/cases", "status"): enum_schema(case_statuses),
    ("/v1/compliance/cases", "cursor"): position_cursor_schema,
    ("/v1/compliance/cases", "limit"): limit_schema(cases_page_max),
}

request_examples: Final[RequestExamples] = {
    ("/v1/compliance/cases/{case_id}/decision", "post"): {
        "decision": "approve",
        "note": "Name matches a different person; date of birth differs.",
    },
}
