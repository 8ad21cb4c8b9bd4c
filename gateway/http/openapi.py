"""The OpenAPI document, completed with the request and response bodies the handlers decode
and encode themselves.

Handlers read raw bytes and answer encoded bytes (strict decoding, no framework objects on
the hot path), so Litestar cannot see their bodies. Each domain's routes module declares
them by operation (`request_bodies`, `response_bodies`); this module turns them into JSON
Schema components (msgspec's) and puts each where its operation is, beside the RFC 9457
problem every operation can answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler

from gateway.http.problems import Problem

RequestBodies = Mapping[tuple[str, str], type[msgspec.Struct]]
ResponseBodies = Mapping[tuple[str, str], tuple[str, type[msgspec.Struct]]]


def openapi_document_route(
    *, request_bodies: RequestBodies, response_bodies: ResponseBodies
) -> HTTPRouteHandler:
    """`GET /schema/openapi.json`: Litestar's document with every body filled in."""

    @get("/schema/openapi.json", summary="OpenAPI document", tags=["ops"], include_in_schema=False)
    async def openapi_document(request: Request[Any, Any, Any]) -> Response[bytes]:
        document = request.app.openapi_schema.to_schema()
        _complete(document, request_bodies=request_bodies, response_bodies=response_bodies)
        return Response(content=msgspec.json.encode(document), media_type="application/json")

    return openapi_document


def _complete(
    document: dict[str, Any], *, request_bodies: RequestBodies, response_bodies: ResponseBodies
) -> None:
    types = list(
        dict.fromkeys(
            [*request_bodies.values(), *(t for _, t in response_bodies.values()), Problem]
        )
    )
    schemas, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    document.setdefault("components", {}).setdefault("schemas", {}).update(components)
    paths = document.get("paths", {})
    for (path, method), body_type in request_bodies.items():
        operation = paths.get(path, {}).get(method)
        if operation is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": schemas[types.index(body_type)]}},
            }
    problem_schema = {"application/problem+json": {"schema": schemas[types.index(Problem)]}}
    for (path, method), (status, body_type) in response_bodies.items():
        operation = paths.get(path, {}).get(method)
        if operation is not None:
            operation["responses"] = {
                status: {
                    "description": body_type.__name__,
                    "content": {"application/json": {"schema": schemas[types.index(body_type)]}},
                },
                "default": {"description": "RFC 9457 problem", "content": problem_schema},
            }
