"""Webhook routes: the tenant's endpoints (create, list, read, update, delete, rotate the
secret), its event log (`GET /v1/events`), one event with its deliveries, and manual
redelivery, which also brings dead-lettered deliveries back.

Managing endpoints needs an `admin` key, redelivering an `admin` or `operator` key
(`gateway.http.roles`). A new endpoint receives the events written after it exists;
`POST /v1/events/{id}/redeliver` sends an older one.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

import msgspec
from litestar import Request, Response, delete, get, patch, post
from litestar.params import FromPath, FromQuery

from gateway.http.ids import decode_id, encode_id
from gateway.http.openapi import ParameterSchemas, RequestExamples, ResponseLinks, enum_schema
from gateway.http.paging import limit_schema, page_request, position_cursor_schema, positions
from gateway.http.problems import ProblemError, invalid
from gateway.http.requests import decode_body, json_response, principal_of, request_body
from gateway.runtime import runtime_of
from gateway.webhooks import catalog, signing
from gateway.webhooks.destinations import check_new_destination
from gateway.webhooks.records import deliveries, endpoints
from gateway.webhooks.records.endpoints import EndpointRow, endpoints_page_max
from gateway.webhooks.records.events import (
    DeliveryRow,
    EventRow,
    deliveries_of,
    events_page_max,
    get_event,
    list_events,
)
from gateway.webhooks.wire import (
    Delivery,
    DeliveryList,
    Endpoint,
    EndpointCreate,
    EndpointPage,
    EndpointUpdate,
    Event,
    EventPage,
    Redeliver,
    SecretRotate,
)


def endpoint_view(row: EndpointRow, *, secret: str | None = None) -> Endpoint:
    return Endpoint(
        id=encode_id("we", row.id.int),
        url=row.url,
        description=row.description,
        enabled_events=row.enabled_events,
        in_flight_max=row.in_flight_max,
        status="deleted" if row.deleted_at is not None else "enabled",
        created_at=row.created_at,
        secret=secret,
        previous_secret_expires_at=row.previous_secret_expires_at,
    )


def endpoint_uuid(text: str) -> uuid.UUID:
    return uuid.UUID(int=decode_id("we", text))


async def _checked_body(request: Request[Any, Any, Any]) -> EndpointCreate:
    body = decode_body(await request_body(request), EndpointCreate)
    enabled_events = _checked_filters(body.enabled_events)
    await _check_url(request, body.url)
    return msgspec.structs.replace(body, enabled_events=enabled_events)


def _checked_filters(enabled_events: list[str]) -> list[str]:
    """The filters, each once in the order given; 422 naming `enabled_events` for one that
    names no event."""
    unknown = catalog.unknown_filters(enabled_events)
    if unknown:
        raise invalid(
            "enabled_events",
            detail=f"unknown event filter {unknown[0][:64]!r}",
            message="each must be *, a family such as transfer.*, or an event type",
        )
    return list(dict.fromkeys(enabled_events))


async def _check_url(request: Request[Any, Any, Any], url: str) -> None:
    await check_new_destination(url, sandbox=runtime_of(request).settings.sandbox)


@post("/v1/webhook-endpoints", summary="Add a webhook endpoint", tags=["webhooks"])
async def create_endpoint_route(request: Request[Any, Any, Any]) -> Response[bytes]:
    principal = principal_of(request)
    body = await _checked_body(request)
    runtime = runtime_of(request)

    async def execute(endpoint_id: int) -> tuple[int, msgspec.Struct]:
        secret = signing.new_secret()
        row = await endpoints.create_endpoint(
            runtime.pool,
            runtime.secret_box,
            endpoint_id=uuid.UUID(int=endpoint_id),
            tenant_id=principal.tenant_id,
            url=body.url,
            description=body.description,
            enabled_events=body.enabled_events,
            secret=secret,
            in_flight_max=body.in_flight_max,
        )
        return 201, endpoint_view(row, secret=secret)

    return await runtime.idempotency.response(request, kind="webhook_endpoint", execute=execute)


@get("/v1/webhook-endpoints", summary="The tenant's webhook endpoints", tags=["webhooks"])
async def list_endpoints_route(
    request: Request[Any, Any, Any],
    limit: FromQuery[int] = 50,
    cursor: FromQuery[str | None] = None,
) -> Response[bytes]:
    page = await endpoints.list_endpoints(
        runtime_of(request).pool,
        tenant_id=principal_of(request).tenant_id,
        page=page_request(positions, limit=limit, cursor=cursor, limit_max=endpoints_page_max),
    )
    return json_response(
        200, EndpointPage(data=[endpoint_view(r) for r in page.items], next_cursor=page.next_cursor)
    )


async def _endpoint_or_404(request: Request[Any, Any, Any], endpoint_id: str) -> EndpointRow:
    row = await endpoints.get_endpoint(
        runtime_of(request).pool,
        tenant_id=principal_of(request).tenant_id,
        endpoint_id=endpoint_uuid(endpoint_id),
    )
    if row is None:
        raise ProblemError(404, "not_found", f"no webhook endpoint {endpoint_id[:64]}")
    return row


@get("/v1/webhook-endpoints/{endpoint_id:str}", summary="A webhook endpoint", tags=["webhooks"])
async def read_endpoint_route(
    request: Request[Any, Any, Any], endpoint_id: FromPath[str]
) -> Response[bytes]:
    return json_response(200, endpoint_view(await _endpoint_or_404(request, endpoint_id)))


@patch(
    "/v1/webhook-endpoints/{endpoint_id:str}",
    summary="Change a webhook endpoint's URL, event filter, description or in-flight bound",
    tags=["webhooks"],
)
async def update_endpoint_route(
    request: Request[Any, Any, Any], endpoint_id: FromPath[str]
) -> Response[bytes]:
    principal = principal_of(request)
    body = decode_body(await request_body(request), EndpointUpdate)
    changes: dict[str, str | int | list[str] | None] = {
        field: value
        for field in body.__struct_fields__
        if (value := getattr(body, field)) is not msgspec.UNSET
    }
    if not changes:
        raise ProblemError(
            422,
            "validation_error",
            "give at least one of url, enabled_events, description, in_flight_max",
        )
    if body.enabled_events is not msgspec.UNSET:
        changes["enabled_events"] = _checked_filters(body.enabled_events)
    if body.url is not msgspec.UNSET:
        await _check_url(request, body.url)
    row = await endpoints.update_endpoint(
        runtime_of(request).pool,
        tenant_id=principal.tenant_id,
        endpoint_id=endpoint_uuid(endpoint_id),
        changes=changes,
    )
    if row is None:
        raise ProblemError(404, "not_found", f"no webhook endpoint {endpoint_id[:64]}")
    return json_response(200, endpoint_view(row))


@delete(
    "/v1/webhook-endpoints/{endpoint_id:str}",
    summary="Delete a webhook endpoint and cancel its pending deliveries",
    tags=["webhooks"],
    status_code=200,
)
async def delete_endpoint_route(
    request: Request[Any, Any, Any], endpoint_id: FromPath[str]
) -> Response[bytes]:
    principal = principal_of(request)
    row = await endpoints.delete_endpoint(
        runtime_of(request).pool,
        tenant_id=principal.tenant_id,
        endpoint_id=endpoint_uuid(endpoint_id),
    )
    if row is None:
        raise ProblemError(404, "not_found", f"no webhook endpoint {endpoint_id[:64]}")
    return json_response(200, endpoint_view(row))


@post(
    "/v1/webhook-endpoints/{endpoint_id:str}/rotate-secret",
    summary="Replace the signing secret; the old one keeps signing for an overlap",
    tags=["webhooks"],
)
async def rotate_secret_route(
    request: Request[Any, Any, Any], endpoint_id: FromPath[str]
) -> Response[bytes]:
    principal = principal_of(request)
    body = decode_body(await request_body(request), SecretRotate)
    runtime = runtime_of(request)
    target = endpoint_uuid(endpoint_id)

    async def execute(_: int) -> tuple[int, msgspec.Struct]:
        secret = signing.new_secret()
        row = await endpoints.rotate_secret(
            runtime.pool,
            runtime.secret_box,
            tenant_id=principal.tenant_id,
            endpoint_id=target,
            new_secret=secret,
            overlap_seconds=body.overlap_seconds,
        )
        if row is None:
            raise ProblemError(404, "not_found", f"no webhook endpoint {endpoint_id[:64]}")
        return 200, endpoint_view(row, secret=secret)

    return await runtime.idempotency.response(request, kind="webhook_rotation", execute=execute)


def delivery_view(row: DeliveryRow) -> Delivery:
    return Delivery(
        id=encode_id("msg", row.id.int),
        endpoint_id=encode_id("we", row.endpoint_id.int),
        status=row.status,
        attempts=row.attempt - row.round_base,
        next_attempt_at=row.next_attempt_at,
        last_attempt_at=row.last_attempt_at,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        delivered_at=row.delivered_at,
    )


def event_view(row: EventRow, deliveries: list[DeliveryRow] | None = None) -> Event:
    return Event(
        id=encode_id("evt", row.id.int),
        type=row.type,
        created_at=row.created_at,
        data=row.payload,
        deliveries=None if deliveries is None else [delivery_view(d) for d in deliveries],
    )


@get("/v1/events", summary="The tenant's events, oldest first", tags=["events"])
async def list_events_route(
    request: Request[Any, Any, Any],
    type: FromQuery[str | None] = None,  # noqa: A002 - the query parameter's public name.
    limit: FromQuery[int] = 50,
    cursor: FromQuery[str | None] = None,
) -> Response[bytes]:
    if type is not None and type not in catalog.event_types:
        raise invalid("type", detail="unknown event type", message="not an event type Kovra emits")
    page = await list_events(
        runtime_of(request).pool,
        tenant_id=principal_of(request).tenant_id,
        event_type=type,
        page=page_request(positions, limit=limit, cursor=cursor, limit_max=events_page_max),
    )
    return json_response(
        200, EventPage(data=[event_view(r) for r in page.items], next_cursor=page.next_cursor)
    )


async def _event_or_404(request: Request[Any, Any, Any], event_id: str) -> EventRow:
    row = await get_event(
        runtime_of(request).pool,
        tenant_id=principal_of(request).tenant_id,
        event_id=uuid.UUID(int=decode_id("evt", event_id)),
    )
    if row is None:
        raise ProblemError(404, "not_found", f"no event {event_id[:64]}")
    return row


@get("/v1/events/{event_id:str}", summary="An event and its deliveries", tags=["events"])
async def read_event_route(
    request: Request[Any, Any, Any], event_id: FromPath[str]
) -> Response[bytes]:
    event = await _event_or_404(request, event_id)
    found = await deliveries_of(runtime_of(request).pool, event_id=event.id)
    return json_response(200, event_view(event, found))


@post(
    "/v1/events/{event_id:str}/redeliver",
    summary="Send an event again, also after it was dead-lettered",
    tags=["events"],
    status_code=202,
)
async def redeliver_route(
    request: Request[Any, Any, Any], event_id: FromPath[str]
) -> Response[bytes]:
    principal = principal_of(request)
    body = decode_body(await request_body(request), Redeliver)
    event = await _event_or_404(request, event_id)
    runtime = runtime_of(request)
    pool = runtime.pool
    endpoint_id = None
    if body.endpoint_id is not None:
        endpoint_id = endpoint_uuid(body.endpoint_id)
        found = await endpoints.get_endpoint(
            pool, tenant_id=principal.tenant_id, endpoint_id=endpoint_id
        )
        if found is None:
            raise ProblemError(404, "not_found", f"no webhook endpoint {body.endpoint_id[:64]}")

    async def execute(_: int) -> tuple[int, msgspec.Struct]:
        rows = await deliveries.redeliver(
            pool,
            tenant_id=principal.tenant_id,
            event_id=event.id,
            event_type=event.type,
            endpoint_id=endpoint_id,
        )
        return 202, DeliveryList(data=[delivery_view(r) for r in rows])

    return await runtime.idempotency.response(request, kind="redelivery", execute=execute)


route_handlers: Final = (
    create_endpoint_route,
    list_endpoints_route,
    read_endpoint_route,
    update_endpoint_route,
    delete_endpoint_route,
    rotate_secret_route,
    list_events_route,
    read_event_route,
    redeliver_route,
)
request_bodies: Final[dict[tuple[str, str], type[msgspec.Struct]]] = {
    ("/v1/webhook-endpoints", "post"): EndpointCreate,
    ("/v1/webhook-endpoints/{endpoint_id}", "patch"): EndpointUpdate,
    ("/v1/webhook-endpoints/{endpoint_id}/rotate-secret", "post"): SecretRotate,
    ("/v1/events/{event_id}/redeliver", "post"): Redeliver,
}
response_bodies: Final[dict[tuple[str, str], tuple[str, type[msgspec.Struct]]]] = {
    ("/v1/webhook-endpoints", "post"): ("201", Endpoint),
    ("/v1/webhook-endpoints", "get"): ("200", EndpointPage),
    ("/v1/webhook-endpoints/{endpoint_id}", "get"): ("200", Endpoint),
    ("/v1/webhook-endpoints/{endpoint_id}", "delete"): ("200", Endpoint),
    ("/v1/webhook-endpoints/{endpoint_id}", "patch"): ("200", Endpoint),
    ("/v1/webhook-endpoints/{endpoint_id}/rotate-secret", "post"): ("200", Endpoint),
    ("/v1/events", "get"): ("200", EventPage),
    ("/v1/events/{event_id}", "get"): ("200", Event),
    ("/v1/events/{event_id}/redeliver", "post"): ("202", DeliveryList),
}

parameter_schemas: Final[ParameterSchemas] = {
    ("/v1/webhook-endpoints", "cursor"): position_cursor_schema,
    ("/v1/webhook-endpoints", "limit"): limit_schema(endpoints_page_max),
    ("/v1/events", "type"): enum_schema(catalog.event_types),
    ("/v1/events", "cursor"): position_cursor_schema,
    ("/v1/events", "limit"): limit_schema(events_page_max),
}

request_examples: Final[RequestExamples] = {
    ("/v1/webhook-endpoints", "post"): {
        "url": "https://erp.example.com/kovra/events",
        "enabled_events": ["transfer.completed", "transfer.rail_rejected"],
        "description": "ERP ledger sync",
        "in_flight_max": 8,
    },
    ("/v1/webhook-endpoints/{endpoint_id}/rotate-secret", "post"): {"overlap_seconds": 3600},
    ("/v1/webhook-endpoints/{endpoint_id}", "patch"): {"enabled_events": ["transfer.completed"]},
    ("/v1/events/{event_id}/redeliver", "post"): {"endpoint_id": "we_01JD3XKE5F6G7H8J9K0M1N2P3Q"},
}

_endpoint_id = {"endpoint_id": "$response.body#/id"}
_endpoint = "/v1/webhook-endpoints/{endpoint_id}"
response_links: Final[ResponseLinks] = {
    ("/v1/webhook-endpoints", "post"): {
        "GetEndpoint": ((_endpoint, "get"), _endpoint_id),
        "UpdateEndpoint": ((_endpoint, "patch"), _endpoint_id),
        "DeleteEndpoint": ((_endpoint, "delete"), _endpoint_id),
        "RotateSecret": ((f"{_endpoint}/rotate-secret", "post"), _endpoint_id),
    },
}
