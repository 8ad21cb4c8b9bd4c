"""The OpenAPI document served at `/schema/openapi.json` says exactly what the API accepts,
checked from the served document and from the app's answers, in this process over real
Postgres, Redis and the embedded ledger:

- every currency a request names is the `Currency` component, the enum of the deployment's
  enabled currencies (the statement's `currency` query parameter too), and every currency an
  answer names carries the ISO 4217 pattern; a code in lower case or not enabled is refused;
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
- `POST /v1/batches` takes `atomic` in the query for either media type and in a JSON body;
  where both say it they must agree (else 422 `conflicting_parameters`), and the query
  parameter is `true` or `false`, given once; the CSV body is described by its rows;
- every `limit` says the page sizes its list serves, and one past them is refused;
- `OPTIONS` on every path names all of the path's methods in `Allow`;
- a request body whose fields all have defaults is not required, and an empty one is taken;
  every free-text string of a request says it refuses U+0000; a quote's body says exactly
  one of its two amounts; an integer written `100.0` is taken as 100 (JSON Schema's integer);
- a tenant or API key id in an admin path has the range of a Postgres bigint, and one past it
  is a 422, not a 500.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
import pytest_asyncio

from gateway.app import hot_routes, route_modules
from gateway.batches.wire import csv_columns
from gateway.http.ids import encode_id, id_pattern, path_parameter_prefixes
from gateway.http.roles import allowed_roles, keyless_routes
from ledger.currencies import currencies_enabled_default
from tests import redis_server
from tests.gateway.api_matrix import Api, Tenant, admin, api_for_a_module

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
    async with api_for_a_module(tmp_path_factory.mktemp("openapi"), redis_url=redis_url) as api:
        yield api


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


def test_every_currency_a_request_names_is_an_enabled_one(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    requested = {
        operation["requestBody"]["content"]["application/json"]["schema"].get("$ref", "")
        for _, _, operation in operations(document)
        if "application/json" in operation.get("requestBody", {}).get("content", {})
    } | {"#/components/schemas/BatchItemCreate"}
    currencies = [
        (name, field, schema)
        for name, component in schemas.items()
        for own in (component, *component.get("allOf", []))
        for field, schema in own.get("properties", {}).items()
        if "currency" in field
    ]
    assert {"QuoteCreate", "BatchItemCreate"} <= {name for name, _, _ in currencies}
    assert len(currencies) >= 10, currencies
    enabled = sorted(currencies_enabled_default)  # The module's app enables the defaults.
    assert schemas["Currency"]["enum"] == enabled
    reference = {"$ref": "#/components/schemas/Currency"}
    for name, field, schema in currencies:
        options = [o for o in schema.get("anyOf", [schema]) if o.get("type") != "null"]
        if f"#/components/schemas/{name}" in requested:
            assert options == [reference], (name, field, schema)
        else:
            assert {option.get("pattern") for option in options} == {"^[A-Z]{3}$"}, (name, field)
    assert query_parameters(document, "currency") == [
        ("/v1/statements", reference),
        ("/v1/funding-instructions", reference),
        ("/v1/customers/{customer_id}/income-forecast", reference),
    ]


@on_the_modules_loop
async def test_a_currency_in_lower_case_or_not_enabled_is_refused(api: Api, tenant: Tenant) -> None:
    headers = tenant.headers("admin")
    for currency, code in (("eur", "validation_error"), ("NOK", "currency_not_enabled")):
        deposit = await api.client.post(
            "/v1/deposits", json={"currency": currency, "amount": 100}, headers=headers
        )
        assert deposit.status_code == 422, deposit.text
        assert deposit.json()["code"] == code
        statement = await api.client.get(
            "/v1/statements", params={"currency": currency}, headers=headers
        )
        assert statement.status_code == 422, statement.text
        assert statement.json()["code"] == code


@on_the_modules_loop
async def test_every_id_in_a_path_has_its_prefix_pattern_and_issued_ids_match_it(
    api: Api, tenant: Tenant, document: dict[str, Any]
) -> None:
    patterns: dict[str, str] = {}
    for path, _, operation in operations(document):
        for parameter in operation.get("parameters", []):
            schema = parameter["schema"]
            if parameter["in"] == "path" and schema["type"] == "string" and "enum" not in schema:
                assert "pattern" in parameter["schema"], (path, parameter)
                patterns[parameter["name"]] = parameter["schema"]["pattern"]
    assert len(patterns) == 17, patterns
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
    assert len(cursors) == 19, cursors
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
        "/admin/v1/exceptions",
        "/v1/transfers",
        "/v1/compliance/cases",
        "/v1/events",
        "/v1/mandates",
        "/v1/collections",
        "/v1/orchestrations",
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
async def test_a_batch_says_atomic_once_or_the_same_twice(
    api: Api, tenant: Tenant, document: dict[str, Any]
) -> None:
    operation = document["paths"]["/v1/batches"]["post"]
    content = operation["requestBody"]["content"]
    assert set(content) == {"application/json", "text/csv"}
    rows = content["text/csv"]["schema"]
    assert rows["type"] == "array"
    assert set(rows["items"]["required"]) == set(csv_columns)
    body = document["components"]["schemas"]["BatchCreate"]
    assert body["properties"]["atomic"]["type"] == "boolean"
    (atomic,) = [p for p in operation["parameters"] if p["name"] == "atomic"]
    assert (atomic["in"], atomic["schema"]["type"]) == ("query", "boolean")
    recipient = await api.recipient(tenant)
    item = {
        "recipient_id": recipient,
        "source_currency": "EUR",
        "target_currency": "EUR",
        "source_amount": 100,
        "reference": "atomic once",
    }
    headers = tenant.headers("operator")

    async def batch(query: str, json_body: dict[str, Any]) -> Any:
        return await api.client.post(f"/v1/batches{query}", json=json_body, headers=headers)

    conflicting = await batch("?atomic=true", {"items": [item], "atomic": False})
    assert conflicting.status_code == 422, conflicting.text
    assert conflicting.json()["code"] == "conflicting_parameters"
    assert conflicting.json()["errors"][0]["field"] == "atomic"
    for query, json_body in (
        ("?atomic=true", {"items": [item], "atomic": True}),
        ("?atomic=true", {"items": [item]}),
        ("", {"items": [item], "atomic": True}),
    ):
        agreed = await batch(query, json_body)
        assert agreed.status_code == 201, (query, agreed.text)
        assert agreed.json()["atomic"] is True
    for query in ("?atomic=null", "?atomic=1", "?atomic=true&atomic=true"):
        refused = await batch(query, {"items": [item]})
        assert refused.status_code == 422, (query, refused.text)
        assert refused.json()["errors"][0]["field"] == "atomic"
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
async def test_every_limit_says_the_page_sizes_its_list_serves(
    api: Api, tenant: Tenant, document: dict[str, Any]
) -> None:
    limits = query_parameters(document, "limit")
    assert len(limits) == 19, limits
    for path, schema in limits:
        assert (schema["type"], schema["minimum"]) == ("integer", 1), (path, schema)
        assert schema["minimum"] <= schema["default"] <= schema["maximum"], (path, schema)
        served = await get(api, tenant, path, {"limit": str(schema["maximum"])})
        assert served.status_code == 200, (path, served.text)
        for refused in (schema["maximum"] + 1, 0):
            answer = await get(api, tenant, path, {"limit": str(refused)})
            assert answer.status_code == 422, (path, refused, answer.text)
            assert answer.json()["errors"][0]["field"] == "limit"


@on_the_modules_loop
async def test_options_names_every_method_of_the_path(api: Api, tenant: Tenant) -> None:
    routes = {route.path_format: set(route.methods) for route in api.app.routes}
    assert {"GET", "POST"} <= routes["/v1/transfers"]
    for template, served in sorted(routes.items()):
        path = re.sub(r"{[a-z_]+}", "1", template)
        headers = admin if template.startswith("/admin/") else tenant.headers("admin")
        answer = await api.client.options(path, headers=headers)
        assert answer.status_code == 204, (template, answer.text)
        allowed = {name.strip() for name in answer.headers["allow"].split(",")}
        assert allowed == served, (template, answer.headers["allow"])


def test_request_bodies_say_what_they_refuse(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    paths = document["paths"]
    optional = {
        (path, method)
        for path, method, operation in operations(document)
        if "requestBody" in operation and not operation["requestBody"]["required"]
    }
    assert {
        ("/v1/holds/{hold_id}/void", "post"),
        ("/v1/webhook-endpoints/{endpoint_id}/rotate-secret", "post"),
        ("/v1/events/{event_id}/redeliver", "post"),
    } <= optional
    assert ("/v1/quotes", "post") not in optional
    assert paths["/v1/webhook-endpoints/{endpoint_id}"]["patch"]["requestBody"]["required"]
    # Free text refuses U+0000; text that goes into rail messages refuses every control
    # character; map keys are strings too.
    assert schemas["HoldCreate"]["properties"]["reference"]["anyOf"][0]["pattern"] == (
        r"^[^\x00-\x1f\x7f]*$"
    )
    assert schemas["EndpointCreate"]["properties"]["description"]["anyOf"][0]["pattern"] == (
        r"^[^\u0000]*$"
    )
    bank_details = schemas["RecipientCreate"]["properties"]["bank_details"]
    assert bank_details["propertyNames"]["pattern"] == r"^[^\u0000]*$"
    assert re.fullmatch(bank_details["additionalProperties"]["pattern"], "DE89")
    # Exactly one amount, which a Struct's own schema cannot say.
    for name in ("QuoteCreate", "BatchItemCreate"):
        own, extra = schemas[name]["allOf"]
        assert {"source_amount", "target_amount"} <= set(own["properties"])
        (source, target) = extra["oneOf"]
        assert (source["required"], target["required"]) == (["source_amount"], ["target_amount"])


@on_the_modules_loop
async def test_an_empty_optional_body_and_an_integral_float_are_taken(
    api: Api, tenant: Tenant
) -> None:
    headers = tenant.headers("admin")
    hold = await api.make("hold_id", tenant)
    voided = await api.client.post(f"/v1/holds/{hold}/void", headers=headers)
    assert voided.status_code == 200, voided.text
    for amount, expected in (("100.0", 201), ("1e2", 201), ("100.5", 422)):
        answer = await api.client.post(
            "/v1/quotes",
            content=f'{{"source_currency": "EUR", "target_currency": "IDR", '
            f'"source_amount": {amount}}}',
            headers={**headers, "Content-Type": "application/json"},
        )
        assert answer.status_code == expected, (amount, answer.text)
        if expected == 201:
            assert answer.json()["source_amount"] == 100


@on_the_modules_loop
async def test_an_admin_path_id_past_a_bigint_is_a_422(api: Api, document: dict[str, Any]) -> None:
    path = "/admin/v1/tenants/{tenant_id}"
    (tenant_id,) = document["paths"][path]["get"]["parameters"]
    assert tenant_id["schema"] == {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
    for refused in (str(2**63), "27851503541430685532160"):
        answer = await api.client.get(f"/admin/v1/tenants/{refused}", headers=admin)
        assert answer.status_code == 422, answer.text


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
        if path.startswith(("/v1/", "/admin/v1/")) and (method.upper(), path) not in keyless_routes
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
    # The JSON bodies; a bank statement is an XML file (tests/gateway/funding).
    with_bodies = [
        (p, m, o)
        for p, m, o in guarded(document)
        if "application/json" in o.get("requestBody", {}).get("content", {})
    ]
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


# A `..._id` field that is not one of Kovra's ids: a customer's id in the tenant's own system.
foreign_id_fields = frozenset({"external_id"})


def ids_in(value: Any) -> list[tuple[str, str]]:
    """(field, id) of every `..._id` string anywhere in `value` that names a Kovra object."""
    if isinstance(value, list):
        return [found for item in value for found in ids_in(item)]
    if not isinstance(value, dict):
        return []
    found = [
        (k, v)
        for k, v in value.items()
        if k.endswith("_id") and k not in foreign_id_fields and isinstance(v, str)
    ]
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
            # A PATCH, or a body with required fields, is sent as its example.
            required = target.get("requestBody", {}).get("required", False)
            example = (media or {}).get("example")
            body = example if method == "patch" or required else ({} if media else None)
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
