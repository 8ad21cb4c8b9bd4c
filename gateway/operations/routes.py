"""The admin plane's operations exceptions (`/admin/v1/exceptions`): what Kovra left to a
person, listed, read, and resolved with a note (and, for an unmatched statement entry,
optionally by releasing its money from suspense to a tenant's wallet). Every resolution is
audited with the operator's actor before it is made."""

from __future__ import annotations

from typing import Any, Final

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery

from gateway.http.ids import decode_id
from gateway.http.openapi import ParameterSchemas, RequestExamples, enum_schema
from gateway.http.paging import limit_schema, page_request, position_cursor_schema, positions
from gateway.http.problems import invalid
from gateway.http.requests import admin_actor_of, decode_body, json_response, request_body
from gateway.operations import wire
from gateway.operations.service import exception_view, exceptions_page_max, statuses
from gateway.runtime import runtime_of

page_default = 100
kind_length_max = 64
kind_pattern = f"^[a-z][a-z_]{{0,{kind_length_max - 1}}}$"


def _kind_or_422(kind: str | None) -> str | None:
    """A kind as exceptions are named (lower case and underscores), else a 422."""
    if kind is None:
        return None
    if not (0 < len(kind) <= kind_length_max and kind.isascii()) or not (
        kind[0].isalpha() and kind.islower() and all(c.islower() or c == "_" for c in kind)
    ):
        raise invalid("kind", detail="kind is not an exception kind", message=kind_pattern)
    return kind


@get("/admin/v1/exceptions", summary="Operations exceptions, newest first", tags=["admin"])
async def list_exceptions(
    request: Request[Any, Any, Any],
    status: FromQuery[str | None] = None,
    kind: FromQuery[str | None] = None,
    limit: FromQuery[int] = page_default,
    cursor: FromQuery[str | None] = None,
) -> Response[bytes]:
    page = page_request(positions, limit=limit, cursor=cursor, limit_max=exceptions_page_max)
    if status is not None and status not in statuses:
        raise invalid("status", detail="unknown status", message="must be open or resolved")
    found = await runtime_of(request).operations.exceptions(
        status=status, kind=_kind_or_422(kind), page=page
    )
    return json_response(
        200, wire.OperationsExceptionPage(data=found.items, next_cursor=found.next_cursor)
    )


@get("/admin/v1/exceptions/{exception_id:str}", summary="An exception", tags=["admin"])
async def read_exception(
    request: Request[Any, Any, Any], exception_id: FromPath[str]
) -> Response[bytes]:
    found = await runtime_of(request).operations.exception(decode_id("exc", exception_id))
    return json_response(200, found)


@post(
    "/admin/v1/exceptions/{exception_id:str}/resolve",
    summary="Resolve an exception with a note (and release suspense money to a tenant)",
    tags=["admin"],
    status_code=200,
)
async def resolve_exception(
    request: Request[Any, Any, Any], exception_id: FromPath[str]
) -> Response[bytes]:
    body = decode_body(await request_body(request), wire.ExceptionResolve)
    runtime = runtime_of(request)
    identifier = decode_id("exc", exception_id)
    actor = admin_actor_of(request)
    if body.tenant_id is None:
        resolved = await runtime.operations.resolve(identifier, note=body.note, actor=actor)
        return json_response(200, resolved)
    row = await runtime.funding.release(
        identifier, tenant_id=body.tenant_id, note=body.note, actor=actor
    )
    return json_response(200, exception_view(row))


route_handlers: Final = (list_exceptions, read_exception, resolve_exception)
request_bodies: Final[dict[tuple[str, str], type[msgspec.Struct]]] = {
    ("/admin/v1/exceptions/{exception_id}/resolve", "post"): wire.ExceptionResolve,
}
response_bodies: Final[dict[tuple[str, str], tuple[str, type[msgspec.Struct]]]] = {
    ("/admin/v1/exceptions", "get"): ("200", wire.OperationsExceptionPage),
    ("/admin/v1/exceptions/{exception_id}", "get"): ("200", wire.OperationsException),
    ("/admin/v1/exceptions/{exception_id}/resolve", "post"): ("200", wire.OperationsException),
}
parameter_schemas: Final[ParameterSchemas] = {
    ("/admin/v1/exceptions", "status"): enum_schema(statuses),
    ("/admin/v1/exceptions", "kind"): {
        "type": "string",
        "pattern": kind_pattern,
        "description": "e.g. unmatched_statement_entry",
    },
    ("/admin/v1/exceptions", "limit"): limit_schema(exceptions_page_max),
    ("/admin/v1/exceptions", "cursor"): position_cursor_schema,
}
request_examples: Final[RequestExamples] = {
    ("/admin/v1/exceptions/{exception_id}/resolve", "post"): {
        "note": "Payer confirmed by phone that the reference ended in 71; releasing to tenant 71.",
        "tenant_id": 71,
    },
}
