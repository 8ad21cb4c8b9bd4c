"""The OpenAPI document, completed with the request and response bodies the handlers decode
and encode themselves.

Handlers read raw bytes and answer encoded bytes (strict decoding, no framework objects on
the hot path), so Litestar cannot see their bodies. Each domain's routes module declares
them by operation (`request_bodies`, `response_bodies`); this module turns them into JSON
Schema components (msgspec's) and puts each where its operation is, beside the RFC 9457
problem every operation can answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import msgspec
import msgspec.inspect
from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler

from gateway.http.ids import (
    id_pattern,
    path_parameter_prefixes,
    row_id_path_parameters,
    row_id_schema,
)
from gateway.http.problems import Problem, codes_of_status
from gateway.http.roles import allowed_roles, everyone, keyless_routes
from gateway.http.wire import enabled_currency_marker

RequestBodies = Mapping[tuple[str, str], type[msgspec.Struct]]
ResponseBodies = Mapping[tuple[str, str], tuple[str, type[msgspec.Struct]]]
# The schema of a query parameter the handler checks itself, by (path, parameter name):
# Litestar sees a plain string where the handler accepts only an enum or a pattern.
ParameterSchemas = Mapping[tuple[str, str], dict[str, Any]]
# Request bodies in another media type than JSON, by operation: media type to media object.
RequestMedia = Mapping[tuple[str, str], Mapping[str, dict[str, Any]]]
# An example of each JSON request body, by operation; a test decodes each with its Struct.
RequestExamples = Mapping[tuple[str, str], dict[str, Any]]
# No field takes U+0000 (`decode_body` refuses it before decoding: Postgres text cannot hold
# it), so each free-text string of a request says so.
no_nul_pattern = r"^[^\u0000]*$"
# The operations an answer leads to, by the operation answering: link name to the target
# (path, method) and the target's path parameters (or `body`), each as a runtime expression.
Link = tuple[tuple[str, str], Mapping[str, Any]]
ResponseLinks = Mapping[tuple[str, str], Mapping[str, Link]]


def enum_schema(values: Iterable[str]) -> dict[str, Any]:
    """A query parameter that takes one of `values`."""
    return {"type": "string", "enum": list(values)}


def openapi_document_route(
    *,
    request_bodies: RequestBodies,
    response_bodies: ResponseBodies,
    parameter_schemas: ParameterSchemas,
    request_media: RequestMedia,
    request_examples: RequestExamples,
    response_links: ResponseLinks,
    currencies: Sequence[str],
) -> HTTPRouteHandler:
    """`GET /schema/openapi.json`: Litestar's document with every body filled in, naming
    the deployment's enabled `currencies` where a request names one."""

    @get("/schema/openapi.json", summary="OpenAPI document", tags=["ops"], include_in_schema=False)
    async def openapi_document(request: Request[Any, Any, Any]) -> Response[bytes]:
        document = request.app.openapi_schema.to_schema()
        _complete(document, request_bodies=request_bodies, response_bodies=response_bodies)
        _constrain_parameters(document, parameter_schemas)
        _add_request_media(document, request_media)
        _add_request_examples(document, request_examples)
        _add_links(document, response_bodies=response_bodies, response_links=response_links)
        _document_problems(document)
        # The walks below change schemas in place; the routes modules' constants must not
        # change with them, so they work on a copy that shares nothing.
        document = msgspec.json.decode(msgspec.json.encode(document))
        _forbid_nul_in_request_strings(document)
        _enumerate_currencies(document, currencies)
        return Response(content=msgspec.json.encode(document), media_type="application/json")

    return openapi_document


def _complete(
    document: dict[str, Any], *, request_bodies: RequestBodies, response_bodies: ResponseBodies
) -> None:
    types: list[type[msgspec.Struct]] = list(
        dict.fromkeys(
            [*request_bodies.values(), *(t for _, t in response_bodies.values()), Problem]
        )
    )
    schemas, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    for struct_type in _structs_within(types):
        extra = getattr(struct_type, "json_schema_extra", None)
        if extra is not None:
            # Beside the Struct's own schema rather than inside it: a generator reads a
            # combinator at an object's top level as a union of object types, and gives the
            # body no model of its own.
            own = components[struct_type.__name__]
            components[struct_type.__name__] = {
                "title": own.get("title", struct_type.__name__),
                "allOf": [own, extra],
            }
    document.setdefault("components", {}).setdefault("schemas", {}).update(components)
    paths = document.get("paths", {})
    for (path, method), body_type in request_bodies.items():
        operation = paths.get(path, {}).get(method)
        if operation is not None:
            schema = schemas[types.index(body_type)]
            if method == "patch":
                # A PATCH that changes nothing is refused (422), so its body names a field.
                schema = {"allOf": [schema], "minProperties": 1}
            # `decode_body` reads an empty body as `{}`, so a body whose fields all have
            # defaults may be left out.
            fields = msgspec.structs.fields(body_type)
            operation["requestBody"] = {
                "required": method == "patch" or any(field.required for field in fields),
                "content": {"application/json": {"schema": schema}},
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


def _structs_within(types: Iterable[type[msgspec.Struct]]) -> set[type[msgspec.Struct]]:
    """Every Struct type `types` hold, themselves and those nested in their fields."""
    found: set[type[msgspec.Struct]] = set()
    pending: list[msgspec.inspect.Type] = list(msgspec.inspect.multi_type_info(list(types)))
    while pending:
        info = pending.pop()
        if isinstance(info, msgspec.inspect.StructType):
            if info.cls in found:
                continue
            found.add(info.cls)
            pending.extend(field.type for field in info.fields)
        elif isinstance(info, msgspec.inspect.UnionType):
            pending.extend(info.types)
        elif isinstance(info, msgspec.inspect.Metadata):
            pending.append(info.type)
        elif isinstance(info, msgspec.inspect.CollectionType | msgspec.inspect.DictType):
            pending.append(
                info.value_type if isinstance(info, msgspec.inspect.DictType) else info.item_type
            )
    return found


def _constrain_parameters(document: dict[str, Any], parameter_schemas: ParameterSchemas) -> None:
    """Each id in a path with its prefix's pattern (`decode_id` answers 404 for anything
    else) or, for a row id, its exact range, and each query parameter a handler checks
    itself with what it accepts."""
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                name = parameter["name"]
                prefix = path_parameter_prefixes.get(name)
                if parameter["in"] == "path" and prefix is not None:
                    parameter["schema"] = {"type": "string", "pattern": id_pattern(prefix)}
                elif parameter["in"] == "path" and name in row_id_path_parameters:
                    parameter["schema"] = dict(row_id_schema)
                elif (path, name) in parameter_schemas:
                    schema = dict(parameter_schemas[path, name])
                    if "default" in parameter.get("schema", {}):
                        schema["default"] = parameter["schema"]["default"]
                    parameter["schema"] = schema


def _add_request_media(document: dict[str, Any], request_media: RequestMedia) -> None:
    """The other media types an operation reads its body in, beside JSON, or instead of it
    (an operation without a JSON body, such as a bank statement file in XML)."""
    paths = document.get("paths", {})
    for (path, method), media in request_media.items():
        operation = paths.get(path, {}).get(method)
        if operation is not None:
            body = operation.setdefault("requestBody", {"required": True, "content": {}})
            body["content"].update(media)


# What each problem status means to a client, and the headers that come with it.
_problem_descriptions = {
    400: "The body is not JSON (or not the CSV) the operation reads",
    401: "No valid credentials",
    403: "The key's role may not call this, or the tenant or recipient is frozen or blocked",
    404: "No such object for this tenant",
    409: "The request conflicts with the object's state or with an earlier Idempotency-Key",
    413: "The body is larger than the operation accepts",
    422: "A field or parameter is invalid, or the domain refuses the request",
    429: "The tenant's rate limit is spent",
    503: "A dependency is unavailable; retry after Retry-After seconds",
}
_keyless_descriptions = {
    401: "The signature is missing, stale or wrong, or the body is malformed: nothing is stored",
    404: "No such sender in this deployment",
    413: "The body is larger than the operation accepts",
    503: "A dependency is unavailable; retry after Retry-After seconds",
}
_integer_header = {"schema": {"type": "integer", "minimum": 0}}
_problem_headers = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}}},
    429: {"Retry-After": _integer_header},
    503: {"Retry-After": _integer_header},
}


def problem_statuses(path: str, method: str, operation: dict[str, Any]) -> list[int]:
    """The problem statuses an operation can answer: the edge's (authentication, rate
    limits, roles, decoding, idempotency, outages) and, where it has a body or parameters to
    check or objects to find, the domain's."""
    has_body = "requestBody" in operation
    places = {parameter["in"] for parameter in operation.get("parameters", [])}
    if (method.upper(), path) in keyless_routes:
        # Signed by its sender rather than keyed: a bad signature, an unknown sender, a
        # body too large, an outage.
        return [401, 404, 413, 503]
    found: set[int] = set()
    tenant_route = path.startswith("/v1/")
    if tenant_route or path.startswith("/admin/v1/"):
        found |= {401, 503}
        # An admin route is 403 while the admin plane is disabled; a tenant route when the
        # key's role may not call it or the tenant or its recipient is frozen or blocked.
        if not tenant_route or has_body or allowed_roles(method.upper(), path) != everyone:
            found.add(403)
        if method != "get":
            found.add(409)
    if tenant_route:
        found.add(429)
    if has_body:
        found |= {400, 413, 422}
    if "query" in places:
        found.add(422)
    if "path" in places:
        found.add(404)
    if path == "/ready":
        found.add(503)
    return sorted(found)


def _document_problems(document: dict[str, Any]) -> None:
    """Each problem status an operation can answer, with the codes of that status; the
    `default` problem stays for the rest (a 500)."""
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            # Litestar's own 400 is for parameters, which Kovra answers with 422.
            responses.pop("400", None)
            for status in problem_statuses(path, method, operation):
                schema = {
                    "allOf": [problem_ref],
                    "properties": {
                        "status": {"const": status},
                        "code": {"type": "string", "enum": codes_of_status(status)},
                    },
                }
                keyless = (method.upper(), path) in keyless_routes
                responses[str(status)] = {
                    "description": _keyless_descriptions.get(status, "")
                    if keyless
                    else _problem_descriptions[status],
                    "headers": {}
                    if keyless and status == 401
                    else _problem_headers.get(status, {}),
                    "content": {"application/problem+json": {"schema": schema}},
                }
            responses.setdefault(
                "default",
                {
                    "description": "RFC 9457 problem",
                    "content": {"application/problem+json": {"schema": problem_ref}},
                },
            )


def _add_request_examples(document: dict[str, Any], request_examples: RequestExamples) -> None:
    paths = document.get("paths", {})
    for (path, method), example in request_examples.items():
        operation = paths.get(path, {}).get(method)
        if operation is not None:
            operation["requestBody"]["content"]["application/json"]["example"] = example


def _add_links(
    document: dict[str, Any], *, response_bodies: ResponseBodies, response_links: ResponseLinks
) -> None:
    """OpenAPI links from an answer to the operations it leads to, by operationId."""
    paths = document.get("paths", {})
    for source, links in response_links.items():
        status, _ = response_bodies[source]
        response = paths[source[0]][source[1]]["responses"][status]
        response["links"] = {}
        for name, ((path, method), values) in links.items():
            link: dict[str, Any] = {"operationId": paths[path][method]["operationId"]}
            parameters = {k: v for k, v in values.items() if k != "body"}
            if parameters:
                link["parameters"] = parameters
            if "body" in values:
                link["requestBody"] = values["body"]
            response["links"][name] = link


def _schemas_in(schema: Any) -> Iterator[dict[str, Any]]:
    """`schema` and every schema nested in it, depth first."""
    if isinstance(schema, dict):
        yield schema
        for value in schema.values():
            yield from _schemas_in(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _schemas_in(value)


def _forbid_nul_in_request_strings(document: dict[str, Any]) -> None:
    """`no_nul_pattern` on each string of a request body that has no pattern, enum or
    format of its own, in the components the request bodies reach."""
    components: dict[str, Any] = document.get("components", {}).get("schemas", {})
    bodies = [
        operation["requestBody"]
        for operations in document.get("paths", {}).values()
        for operation in operations.values()
        if isinstance(operation, dict) and "requestBody" in operation
    ]
    reached: list[Any] = list(bodies)
    seen: set[str] = set()
    while reached:
        for schema in _schemas_in(reached.pop()):
            reference = schema.get("$ref")
            if isinstance(reference, str) and reference.startswith("#/components/schemas/"):
                name = reference.rsplit("/", maxsplit=1)[1]
                if name not in seen:
                    seen.add(name)
                    reached.append(components[name])
            if schema.get("type") == "string" and not {"pattern", "enum", "const", "format"} & (
                schema.keys()
            ):
                schema["pattern"] = no_nul_pattern
            elif schema.get("type") == "object" and schema.get("additionalProperties", False):
                # A map's keys are strings too (bank details by field name).
                schema.setdefault("propertyNames", {}).setdefault("pattern", no_nul_pattern)


def _enumerate_currencies(document: dict[str, Any], currencies: Sequence[str]) -> None:
    """Each place `enabled_currency_marker` stands becomes a reference to one `Currency`
    component, the enum of `currencies`: a generated client gets one type for them all."""
    document.setdefault("components", {}).setdefault("schemas", {})["Currency"] = {
        "title": "Currency",
        "description": "ISO 4217 code of a currency this deployment enables",
        "type": "string",
        "enum": list(currencies),
    }
    for schema in _schemas_in(document):
        if schema.get(enabled_currency_marker, False):
            schema.clear()
            schema["$ref"] = "#/components/schemas/Currency"
