"""The OpenAPI document served at `/schema/openapi.json` says exactly what the API accepts,
checked from the served document and from the app's answers, in this process over real
Postgres, Redis and the embedded ledger:

- every currency property carries the ISO 4217 pattern (any case in requests, which are
  upper-cased; capitals in answers), and the statement's `currency` query parameter too;
- every id in a path carries its kind's prefix pattern, and the ids the API issues match it;
- every `cursor` carries the pattern of the cursors its list writes: the cursor a list answers
  matches it, and a cursor outside it is refused with 422 naming `cursor`;
- every `status`/`type` filter is an enum: each value is served, any other refused with 422;
- a PATCH body must name a field (`minProperties: 1`), and an empty one is refused with 422;
- every route answers a method it does not serve with 405 and an `Allow` header naming the
  methods it does (RFC 9110), the hot routes' paths too, and `GET /metrics` declares the
  content type it answers in;
- every operation documents each problem status it can answer with the codes of that status,
  and answers them so: no credentials (401, with WWW-Authenticate), a body that is not JSON
  (400), an empty JSON object (422), an id that names nothing (404), a role the table does
  not allow (403); every 503 declares Retry-After;
- every JSON request body has an example its Struct decodes (strictly: unknown fields are
  refused), whose ids match their kind's pattern;
- every link names an operation of the document, fills its path parameters from a property
  the answer has, and following it from a real answer reaches the object it names (a quote's
  link creates a transfer);
- `POST /v1/batches` has one place for `atomic` per media type: the JSON body, or the query
  beside a CSV body; the query beside a JSON body is refused with 422.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
import pytest_asyncio

from gateway.app import hot_routes, route_modules
from gateway.batches.parsing import csv_columns
from gateway.http.ids import encode_id, id_pattern, path_parameter_prefixes
from gateway.http.roles import allowed_roles
from tests import redis_server
from tests.gateway.api_matrix import Api, Tenant, admin, environment
from tests.postgres import app_for_a_module

on_the_modules_loop = pytest.mark.asyncio(loop_scope="module")
redis_url = redis_server.redis_url(13)  # This module's own database, emptied around it.
# A value no filter has, and a cursor no list writes.
unknown_filter_value = "no-such-value"
# What the position lists' decoder read before it matched its pattern: a UUID with hyphens.
hyphenated_position_cursor = "1700000000000000_0190a5b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b"
_csv_header = ",".join(csv_columns)
methods = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    data_dir = tmp_path_factory.mktemp("openapi")
    async with app_for_a_module(data_dir, redis_url=redis_url, environment=environment) as (
        app,
        client,
    ):
        yield Api(app, client)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def document(api: Api) -> dict[str, Any]:
    response = await api.client.get("/schema/openapi.json")
    assert response.status_code == 200, response.text
    served: dict[str, Any] = response.json()
    return served


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tenant(api: Api) -> Tenant:
    return await api.tenant("OpenAPI GmbH")


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, by_method in document["paths"].items()
        for method, operation in by_method.items()
    ]


def query_parameters(document: dict[str, Any], name: str) -> list[tuple[str, dict[str, Any]]]:
    """(path, schema) of every GET's query parameter called `name`."""
    return [
        (path, parameter["schema"])
        for path, method, operation in operations(document)
        if method == "get"
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "query" and parameter["name"] == name
    ]


async def served_path(api: Api, tenant: Tenant, path: str) -> str:
    """`path` with a fresh object of the tenant for each of its ids."""
    for parameter in re.findall(r"{([a-z_]+)}", path):
        made = (
            str(tenant.tenant_id) if parameter == "tenant_id" else await api.make(parameter, tenant)
        )
        path = path.replace(f"{{{parameter}}}", made)
    return path


async def get(api: Api, tenant: Tenant, path: str, query: dict[str, str]) -> Any:
    """GET a list (the admin ones with the operator's token) with the statement's currency,
    which it needs, in every query."""
    return await api.client.get(
        await served_path(api, tenant, path),
        params={"currency": "EUR", **query},
        headers=admin if path.startswith("/admin/") else tenant.headers("admin"),
    )


def test_every_currency_property_has_the_iso_4217_pattern(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    requested = {
        operation["requestBody"]["content"]["application/json"]["schema"].get("$ref", "")
        for _, _, operation in operations(document)
        if "requestBody" in operation
    }
    currencies = [
        (name, field, schema)
        for name, component in schemas.items()
        for field, schema in component.get("properties", {}).items()
        if "currency" in field
    ]
    assert len(currencies) >= 10, currencies
    for name, field, schema in currencies:
        options = schema.get("anyOf", [schema])
        patterns = {option.get("pattern") for option in options if option.get("type") != "null"}
        if f"#/components/schemas/{name}" in requested:
            assert patterns == {"^[A-Za-z]{3}$"}, (name, field, schema)
        else:
            assert patterns <= {"^[A-Z]{3}$", "^[A-Za-z]{3}$"}, (name, field, schema)
            assert None not in patterns, (name, field, schema)
    assert query_parameters(document, "currency") == [
        ("/v1/statements", {"type": "string", "pattern": "^[A-Za-z]{3}$"})
    ]


@on_the_modules_loop
async def test_every_id_in_a_path_has_its_prefix_pattern_and_issued_ids_match_it(
    api: Api, tenant: Tenant, document: dict[str, Any]
) -> None:
    patterns: dict[str, str] = {}
    for path, _, operation in operations(document):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path" and parameter["schema"]["type"] == "string":
                assert "pattern" in parameter["schema"], (path, parameter)
                patterns[parameter["name"]] = parameter["schema"]["pattern"]
    assert len(patterns) == 8, patterns
    for name, pattern in patterns.items():
        if name != "event_id":  # Events are made by what happens, not by a request.
            issued = await api.make(name, tenant)
            assert re.fullmatch(pattern, issued), (name, issued, pattern)
            assert re.fullmatch(pattern, issued.lower()), "ids are read in either case"
            assert not re.fullmatch(pattern, issued[:-1]), "an id has 26 digits"


@on_the_modules_loop
async def test_every_cursor_has_the_pattern_of_the_cursors_its_list_writes(
    api: Api, tenant: Tenant, document: dict[str, Any]
) -> None:
    cursors = query_parameters(document, "cursor")
    assert len(cursors) == 8, cursors
    # Two of each object, so a page of one has a next cursor (events and statement entries
    # come with them).
    for parameter in ("transfer_id", "endpoint_id", "hold_id", "hold_id"):
        await api.make(parameter, tenant)
    await api.make("transfer_id", tenant)
    await api.make("endpoint_id", tenant)
    checked: list[str] = []
    for path, schema in cursors:
        assert "pattern" in schema, (path, schema)
        first = await get(api, tenant, path, {"limit": "1"})
        assert first.status_code == 200, (path, first.text)
        written = first.json()["next_cursor"]
        if written is not None:
            assert re.fullmatch(schema["pattern"], written), (path, written, schema)
            checked.append(path)
        for refused in ("x", hyphenated_position_cursor, "\uff11\uff12"):
            assert not re.fullmatch(schema["pattern"], refused)
            answer = await get(api, tenant, path, {"cursor": refused})
            assert answer.status_code == 422, (path, refused, answer.text)
            assert answer.json()["errors"][0]["field"] == "cursor"
    # Both kinds of cursor were seen written: positions and numbers.
    assert {"/v1/transfers", "/v1/webhook-endpoints", "/v1/statements"} <= set(checked), checked


@on_the_modules_loop
async def test_every_filter_is_an_enum_of_what_the_list_serves(
    api: Api, tenant: Tenant, document: dict[str, Any]
) -> None:
    filters = [*query_parameters(document, "status"), *query_parameters(document, "type")]
    assert {path for path, _ in filters} == {
        "/admin/v1/tenants",
        "/v1/transfers",
        "/v1/compliance/cases",
        "/v1/events",
    }
    for path, schema in filters:
        assert schema["type"] == "string", (path, schema)
        assert schema["enum"], (path, schema)
        name = "type" if path == "/v1/events" else "status"
        for value in schema["enum"]:
            served = await get(api, tenant, path, {name: value})
            assert served.status_code == 200, (path, value, served.text)
        refused = await get(api, tenant, path, {name: unknown_filter_value})
        assert refused.status_code == 422, (path, refused.text)
        assert refused.json()["errors"][0]["field"] == name


@on_the_modules_loop
async def test_a_patch_body_must_change_something(
    api: Api, tenant: Tenant, document: dict[str, Any]
) -> None:
    patches = [(path, op) for path, method, op in operations(document) if method == "patch"]
    assert [path for path, _ in patches] == ["/v1/webhook-endpoints/{endpoint_id}"]
    for path, operation in patches:
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert schema["minProperties"] == 1, schema
        answer = await api.client.patch(
            await served_path(api, tenant, path), json={}, headers=tenant.headers("admin")
        )
        assert answer.status_code == 422, answer.text
        assert answer.json()["code"] == "validation_error"


@on_the_modules_loop
async def test_a_batch_says_atomic_in_one_place_for_each_media_type(
    api: Api, tenant: Tenant, document: dict[str, Any]
) -> None:
    operation = document["paths"]["/v1/batches"]["post"]
    content = operation["requestBody"]["content"]
    assert set(content) == {"application/json", "text/csv"}
    body = document["components"]["schemas"]["BatchCreate"]
    assert body["properties"]["atomic"]["type"] == "boolean"
    (atomic,) = [p for p in operation["parameters"] if p["name"] == "atomic"]
    assert atomic["in"] == "query"
    assert "text/csv upload only" in atomic["schema"]["description"]
    recipient = await api.recipient(tenant)
    item = {
        "recipient_id": recipient,
        "source_currency": "EUR",
        "target_currency": "EUR",
        "source_amount": 100,
        "reference": "atomic once",
    }
    headers = tenant.headers("operator")
    twice = await api.client.post(
        "/v1/batches", params={"atomic": "true"}, json={"items": [item]}, headers=headers
    )
    assert twice.status_code == 422, twice.text
    assert twice.json()["errors"][0]["field"] == "atomic"
    in_the_body = await api.client.post(
        "/v1/batches", json={"items": [item], "atomic": True}, headers=headers
    )
    assert in_the_body.status_code == 201, in_the_body.text
    assert in_the_body.json()["atomic"] is True
    csv = ",".join([recipient, "EUR", "EUR", "100", "", "atomic csv"])
    uploaded = await api.client.post(
        "/v1/batches",
        params={"atomic": "true"},
        content=f"{_csv_header}\n{csv}\n",
        headers={**headers, "Content-Type": "text/csv"},
    )
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["atomic"] is True


@on_the_modules_loop
async def test_every_route_answers_an_unserved_method_with_405_and_allow(
    api: Api, tenant: Tenant
) -> None:
    routes = {route.path_format: set(route.methods) for route in api.app.routes}
    assert {path for _, path in hot_routes} <= set(routes)
    refused = 0
    for template, served in sorted(routes.items()):
        path = re.sub(r"{[a-z_]+}", "1", template)
        headers = admin if template.startswith("/admin/") else tenant.headers("admin")
        for method in sorted(set(methods) - served):
            answer = await api.client.request(method, path, headers=headers)
            assert answer.status_code == 405, (method, template, answer.text)
            allowed = {name.strip() for name in answer.headers["allow"].split(",")}
            assert allowed == served, (method, template, answer.headers["allow"])
            refused += 1
    assert refused > 100, refused


@on_the_modules_loop
async def test_metrics_declares_the_content_type_it_answers_in(
    api: Api, document: dict[str, Any]
) -> None:
    declared = document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    answer = await api.client.get("/metrics")
    assert answer.status_code == 200
    # The declared media type, with the charset every text answer names, once.
    assert [f"{media_type}; charset=utf-8" for media_type in declared] == [
        answer.headers["content-type"]
    ]
    assert answer.headers["content-type"].startswith("text/plain; version=")
    assert answer.headers["content-type"].count("charset") == 1, answer.headers["content-type"]


def documented(operation: dict[str, Any], status: int) -> list[str]:
    """The codes `operation` documents for `status`; fails when it does not document it."""
    response = operation["responses"].get(str(status))
    assert response is not None, (operation["operationId"], status)
    schema = response["content"]["application/problem+json"]["schema"]
    assert schema["properties"]["status"] == {"const": status}
    codes: list[str] = schema["properties"]["code"]["enum"]
    return codes


def guarded(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, method, operation in operations(document)
        if path.startswith(("/v1/", "/admin/v1/"))
    ]


def nothing_path(path: str) -> str:
    """`path` with ids that name nothing: well formed, never issued."""
    for name, prefix in path_parameter_prefixes.items():
        path = path.replace(f"{{{name}}}", encode_id(prefix, 1))
    return re.sub(r"{[a-z_]+}", "1", path)


def allowed_headers(tenant: Tenant, method: str, path: str) -> dict[str, str]:
    """The operator's token for an admin route, else a key of a role that may call it."""
    if path.startswith("/admin/"):
        return admin
    allowed = allowed_roles(method.upper(), path)
    return tenant.headers(next(r for r in ("admin", "operator", "compliance") if r in allowed))


def check_problem(answer: Any, operation: dict[str, Any], status: int) -> None:
    assert answer.status_code == status, (operation["operationId"], answer.text)
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] in documented(operation, status), answer.text


@on_the_modules_loop
async def test_every_guarded_operation_documents_and_answers_401_and_503(
    api: Api, document: dict[str, Any]
) -> None:
    for path, method, operation in guarded(document):
        answer = await api.client.request(method, nothing_path(path))
        check_problem(answer, operation, 401)
        assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert "dependency_unavailable" in documented(operation, 503)
        assert "Retry-After" in operation["responses"]["503"]["headers"]
        if path.startswith("/v1/"):
            assert "rate_limited" in documented(operation, 429)


@on_the_modules_loop
async def test_every_body_is_refused_as_documented_when_malformed_or_empty(
    api: Api, tenant: Tenant, document: dict[str, Any]
) -> None:
    with_bodies = [(p, m, o) for p, m, o in guarded(document) if "requestBody" in o]
    assert len(with_bodies) >= 20, len(with_bodies)
    for path, method, operation in with_bodies:
        headers = allowed_headers(tenant, method, path)
        target = await served_path(api, tenant, path)
        answer = await api.client.request(
            method,
            target,
            content=b"{not json",
            headers={**headers, "Content-Type": "application/json"},
        )
        check_problem(answer, operation, 400)
        empty = await api.client.request(method, target, json={}, headers=headers)
        if not empty.is_success:  # A void, a cancel, a key of the default role need no field.
            check_problem(empty, operation, 422)
        assert "payload_too_large" in documented(operation, 413)


@on_the_modules_loop
async def test_every_id_that_names_nothing_is_a_documented_404(
    api: Api, tenant: Tenant, document: dict[str, Any]
) -> None:
    with_ids = [
        (path, method, operation)
        for path, method, operation in guarded(document)
        if any(p["in"] == "path" for p in operation.get("parameters", []))
    ]
    assert len(with_ids) >= 20, len(with_ids)
    for path, method, operation in with_ids:
        headers = allowed_headers(tenant, method, path)
        body = {"reason": "none"} if "requestBody" in operation else None
        answer = await api.client.request(method, nothing_path(path), json=body, headers=headers)
        if answer.status_code == 404:
            check_problem(answer, operation, 404)
        else:  # A body the route refuses before it looks the id up.
            check_problem(answer, operation, 422)


@on_the_modules_loop
async def test_every_route_a_role_may_not_call_documents_and_answers_403(
    api: Api, tenant: Tenant, document: dict[str, Any]
) -> None:
    refused = 0
    for path, method, operation in guarded(document):
        if not path.startswith("/v1/"):
            assert "admin_disabled" in documented(operation, 403)
            continue
        allowed = allowed_roles(method.upper(), path)
        for role in sorted(set(tenant.keys) - allowed):
            answer = await api.client.request(
                method, nothing_path(path), headers=tenant.headers(role)
            )
            check_problem(answer, operation, 403)
            refused += 1
    assert refused > 30, refused


def ids_in(value: Any) -> list[tuple[str, str]]:
    """(field, id) of every `..._id` string anywhere in `value`."""
    if isinstance(value, list):
        return [found for item in value for found in ids_in(item)]
    if not isinstance(value, dict):
        return []
    found = [(k, v) for k, v in value.items() if k.endswith("_id") and isinstance(v, str)]
    return found + [item for v in value.values() for item in ids_in(v)]


def test_every_request_body_has_an_example_its_struct_decodes(document: dict[str, Any]) -> None:
    structs = {key: body for module in route_modules for key, body in module.request_bodies.items()}
    assert len(structs) >= 20
    for (path, method), struct in structs.items():
        media = document["paths"][path][method]["requestBody"]["content"]["application/json"]
        assert "example" in media, (method, path)
        example = media["example"]
        msgspec.json.decode(msgspec.json.encode(example), type=struct, strict=True)
        for field, value in ids_in(example):
            prefix = path_parameter_prefixes[field]
            assert re.fullmatch(id_pattern(prefix), value), (path, field, value)


def links_of(document: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(source path, source response, link) of every link in the document."""
    return [
        (path, response, link)
        for path, _, operation in operations(document)
        for response in operation["responses"].values()
        for link in response.get("links", {}).values()
    ]


def by_operation_id(document: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    return {op["operationId"]: (path, method, op) for path, method, op in operations(document)}


@on_the_modules_loop
async def test_every_link_leads_from_an_answer_to_the_object_it_names(
    api: Api, tenant: Tenant, document: dict[str, Any]
) -> None:
    links = links_of(document)
    assert len(links) >= 14, len(links)
    targets = by_operation_id(document)
    schemas = document["components"]["schemas"]
    for _, response, link in links:
        path, method, target = targets[link["operationId"]]
        source = response["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        expressions = {**link.get("parameters", {}), **link.get("requestBody", {})}
        for expression in expressions.values():
            assert expression.startswith("$response.body#/"), expression
            assert expression.removeprefix("$response.body#/") in schemas[source]["properties"]
        names = {p["name"] for p in target.get("parameters", []) if p["in"] == "path"}
        assert set(link.get("parameters", {})) == names, (link, names)
        for name in names:  # The maker creates the object through the link's source.
            followed = path.replace(f"{{{name}}}", await api.make(name, tenant))
            media = target.get("requestBody", {}).get("content", {}).get("application/json")
            body = (media or {}).get("example") if method == "patch" else ({} if media else None)
            answer = await api.client.request(
                method, followed, json=body, headers=allowed_headers(tenant, method, path)
            )
            assert answer.status_code not in (404, 405, 422), (method, path, answer.text)
    (create_transfer,) = [
        link for p, _, link in links if p == "/v1/quotes" and "requestBody" in link
    ]
    quote = await api.created(
        tenant,
        "/v1/quotes",
        {"source_currency": "EUR", "target_currency": "EUR", "source_amount": 1000},
    )
    from_quote = {
        field: quote[expression.removeprefix("$response.body#/")]
        for field, expression in create_transfer["requestBody"].items()
    }
    transfer = await api.created(
        tenant,
        targets[create_transfer["operationId"]][0],
        {**from_quote, "recipient_id": await api.recipient(tenant), "reference": "link"},
    )
    assert transfer["quote_id"] == quote["id"]
