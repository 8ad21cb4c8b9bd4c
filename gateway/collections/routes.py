"""Mandates, collections and their messages for tenants; and the providers' notifications
in, the one `/v1` route that takes no tenant credentials (its signature is its proof)."""

from __future__ import annotations

from typing import Any, Final

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery

from compliance.freezes.service import ensure_active
from gateway.collections import wire
from gateway.collections.notifications import notification_bytes_max
from gateway.collections.views import customer_prefix
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
from gateway.runtime import runtime_of

page_max = 100
# The route the authentication middleware lets through without tenant credentials.
provider_webhook_path = "/v1/providers/{provider}/webhooks"


@post("/v1/mandates", summary="Set up a direct-debit mandate", tags=["mandates"])
async def create_mandate(request: Request[Any, Any, Any]) -> Response[bytes]:
    runtime = runtime_of(request)
    principal = principal_of(request)
    ensure_active(principal)
    body = decode_body(await request_body(request), wire.MandateCreate)

    async def execute(mandate_id: int) -> tuple[int, msgspec.Struct]:
        created = await runtime.collections.create_mandate(
            principal, mandate_id=mandate_id, body=body
        )
        return 201, created

    return await runtime.idempotency.response(request, kind="mandate", execute=execute)


@get("/v1/mandates/{mandate_id:str}", summary="A mandate", tags=["mandates"])
async def read_mandate(
    request: Request[Any, Any, Any], mandate_id: FromPath[str]
) -> Response[bytes]:
    mandate = await runtime_of(request).collections.read_mandate(
        principal_of(request), decode_id("mdt", mandate_id)
    )
    return json_response(200, mandate)


def _optional_id(prefix: str, name: str, text: str | None) -> int | None:
    """A filter naming an object by id: a malformed one is a 422 naming the parameter."""
    if text is None:
        return None
    try:
        return decode_id(prefix, text)
    except ProblemError:  # decode_id answers 404, for a path; a filter is a field.
        raise invalid(
            name, detail=f"{name} is not an id", message=f"an id starting {prefix}_"
        ) from None


@get("/v1/mandates", summary="The tenant's mandates", tags=["mandates"])
async def list_mandates(
    request: Request[Any, Any, Any],
    customer_id: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
    limit: FromQuery[int] = 50,
    cursor: FromQuery[str | None] = None,
) -> Response[bytes]:
    page_limit_or_422(limit, limit_max=page_max)
    customer = _optional_id(customer_prefix, "customer_id", customer_id)
    if status is not None and status not in wire.mandate_statuses:
        raise invalid("status", detail="unknown status", message="not a mandate status")
    page = await runtime_of(request).collections.list_mandates(
        principal_of(request),
        customer_id=customer,
        status=status,
        page=page_request(positions, limit=limit, cursor=cursor, limit_max=page_max),
    )
    return json_response(200, wire.MandatePage(data=page.items, next_cursor=page.next_cursor))


@post(
    "/v1/mandates/{mandate_id:str}/deactivate",
    summary="Deactivate a mandate; later collections are refused",
    tags=["mandates"],
)
async def deactivate_mandate(
    request: Request[Any, Any, Any], mandate_id: FromPath[str]
) -> Response[bytes]:
    decode_body(await request_body(request), wire.MandateDeactivate)
    runtime = runtime_of(request)
    principal = principal_of(request)
    object_id = decode_id("mdt", mandate_id)

    async def execute(_: int) -> tuple[int, msgspec.Struct]:
        return 200, await runtime.collections.deactivate(principal, object_id)

    return await runtime.idempotency.response(
        request, kind=f"deactivate-{mandate_id}", execute=execute
    )


@post(
    "/v1/mandates/{mandate_id:str}/collect",
    summary="Collect an amount under an active mandate",
    tags=["collections"],
)
async def collect(request: Request[Any, Any, Any], mandate_id: FromPath[str]) -> Response[bytes]:
    runtime = runtime_of(request)
    principal = principal_of(request)
    ensure_active(principal)
    body = decode_body(await request_body(request), wire.CollectionCreate)
    mandate = decode_id("mdt", mandate_id)

    async def execute(collection_id: int) -> tuple[int, msgspec.Struct]:
        created = await runtime.collections.collect(
            principal, mandate_id=mandate, collection_id=collection_id, body=body
        )
        return 201, created

    return await runtime.idempotency.response(request, kind="collection", execute=execute)


@get("/v1/collections/{collection_id:str}", summary="A collection", tags=["collections"])
async def read_collection(
    request: Request[Any, Any, Any], collection_id: FromPath[str]
) -> Response[bytes]:
    collection = await runtime_of(request).collections.read_collection(
        principal_of(request), decode_id("col", collection_id)
    )
    return json_response(200, collection)


@get("/v1/collections", summary="The tenant's collections", tags=["collections"])
async def list_collections(
    request: Request[Any, Any, Any],
    mandate_id: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
    limit: FromQuery[int] = 50,
    cursor: FromQuery[str | None] = None,
) -> Response[bytes]:
    page_limit_or_422(limit, limit_max=page_max)
    mandate = _optional_id("mdt", "mandate_id", mandate_id)
    if status is not None and status not in wire.collection_statuses:
        raise invalid("status", detail="unknown status", message="not a collection status")
    page = await runtime_of(request).collections.list_collections(
        principal_of(request),
        mandate_id=mandate,
        status=status,
        page=page_request(positions, limit=limit, cursor=cursor, limit_max=page_max),
    )
    return json_response(200, wire.CollectionPage(data=page.items, next_cursor=page.next_cursor))


@get(
    "/v1/collections/{collection_id:str}/messages",
    summary="The pain.008 of a SEPA collection's run",
    tags=["collections"],
)
async def collection_messages(
    request: Request[Any, Any, Any], collection_id: FromPath[str]
) -> Response[bytes]:
    messages = await runtime_of(request).collections.messages(
        principal_of(request), decode_id("col", collection_id)
    )
    return json_response(200, messages)


@post(
    "/v1/providers/{provider:str}/webhooks",
    summary="A mandate provider's notification (signed; no tenant key)",
    tags=["providers"],
    request_max_body_size=notification_bytes_max,
)
async def provider_webhook(
    request: Request[Any, Any, Any], provider: FromPath[str]
) -> Response[bytes]:
    intake = runtime_of(request).provider_intake
    body = await request_body(request)
    headers = {
        key.decode("latin-1").lower(): value.decode("latin-1")
        for key, value in request.scope["headers"]
    }
    stored = await intake.receive(provider, headers=headers, body=body)
    return json_response(200, wire.NotificationReceipt(duplicate=not stored))


route_handlers: Final = (
    create_mandate,
    list_mandates,
    read_mandate,
    deactivate_mandate,
    collect,
    list_collections,
    read_collection,
    collection_messages,
    provider_webhook,
)
request_bodies: Final[dict[tuple[str, str], type[msgspec.Struct]]] = {
    ("/v1/mandates", "post"): wire.MandateCreate,
    ("/v1/mandates/{mandate_id}/deactivate", "post"): wire.MandateDeactivate,
    ("/v1/mandates/{mandate_id}/collect", "post"): wire.CollectionCreate,
}
response_bodies: Final[dict[tuple[str, str], tuple[str, type[msgspec.Struct]]]] = {
    ("/v1/mandates", "post"): ("201", wire.Mandate),
    ("/v1/mandates", "get"): ("200", wire.MandatePage),
    ("/v1/mandates/{mandate_id}", "get"): ("200", wire.Mandate),
    ("/v1/mandates/{mandate_id}/deactivate", "post"): ("200", wire.Mandate),
    ("/v1/mandates/{mandate_id}/collect", "post"): ("201", wire.Collection),
    ("/v1/collections", "get"): ("200", wire.CollectionPage),
    ("/v1/collections/{collection_id}", "get"): ("200", wire.Collection),
    ("/v1/collections/{collection_id}/messages", "get"): ("200", wire.CollectionMessageList),
    (provider_webhook_path, "post"): ("200", wire.NotificationReceipt),
}
_mandate_filter = {"type": "string", "pattern": id_pattern("mdt")}
parameter_schemas: Final[ParameterSchemas] = {
    ("/v1/mandates", "customer_id"): {"type": "string", "pattern": id_pattern(customer_prefix)},
    ("/v1/mandates", "status"): enum_schema(wire.mandate_statuses),
    ("/v1/mandates", "limit"): limit_schema(page_max),
    ("/v1/mandates", "cursor"): position_cursor_schema,
    ("/v1/collections", "mandate_id"): _mandate_filter,
    ("/v1/collections", "status"): enum_schema(wire.collection_statuses),
    ("/v1/collections", "limit"): limit_schema(page_max),
    ("/v1/collections", "cursor"): position_cursor_schema,
    (provider_webhook_path, "provider"): enum_schema(wire.provider_names),
}
request_examples: Final[RequestExamples] = {
    ("/v1/mandates", "post"): {
        "customer_id": "cus_01JD3XK5Q8N2P7R4S6T9V0W1Y2",
        "provider": "sepa_dd",
        "currency": "EUR",
        "bank_details": {"iban": "DE89370400440532013000", "bic": "COBADEFFXXX"},
        "reference": "gym membership 2291",
        "consent": {
            "accepted_at": "2026-01-05T09:30:00Z",
            "ip": "203.0.113.7",
            "user_agent": "Mozilla/5.0",
        },
    },
    ("/v1/mandates/{mandate_id}/deactivate", "post"): {},
    ("/v1/mandates/{mandate_id}/collect", "post"): {
        "amount": 4900,
        "reference": "January fee",
    },
}
_mandate_id = {"mandate_id": "$response.body#/id"}
_collection_id = {"collection_id": "$response.body#/id"}
response_links: Final[ResponseLinks] = {
    ("/v1/mandates", "post"): {
        "GetMandate": (("/v1/mandates/{mandate_id}", "get"), _mandate_id),
        "Collect": (("/v1/mandates/{mandate_id}/collect", "post"), _mandate_id),
        "DeactivateMandate": (("/v1/mandates/{mandate_id}/deactivate", "post"), _mandate_id),
    },
    ("/v1/mandates/{mandate_id}/collect", "post"): {
        "GetCollection": (("/v1/collections/{collection_id}", "get"), _collection_id),
        "GetCollectionMessages": (
            ("/v1/collections/{collection_id}/messages", "get"),
            _collection_id,
        ),
    },
}
