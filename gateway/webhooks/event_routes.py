"""The tenant's event log (`GET /v1/events`), one event with its deliveries, and manual
redelivery, which also brings dead-lettered deliveries back."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery

from gateway.http.ids import decode_id, encode_id
from gateway.http.paging import decode_cursor, encode_cursor, page_limit_or_422
from gateway.http.problems import FieldError, ProblemError
from gateway.http.requests import (
    decode_body,
    idempotent,
    json_response,
    principal_of,
    request_body,
    services_of,
)
from gateway.webhooks import catalog
from gateway.webhooks.records import deliveries
from gateway.webhooks.records.endpoints import get_endpoint
from gateway.webhooks.records.events import (
    DeliveryRow,
    EventRow,
    deliveries_of,
    events_page_max,
    get_event,
    list_events,
)
from gateway.webhooks.routes import endpoint_uuid
from gateway.webhooks.wire import Delivery, DeliveryList, Event, EventPage, Redeliver

redeliver_roles = ("admin", "operator")


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
        raise ProblemError(
            422,
            "validation_error",
            "unknown event type",
            errors=[FieldError(field="type", message="not an event type Kovra emits")],
        )
    rows = await list_events(
        services_of(request).pool,
        tenant_id=principal_of(request).tenant_id,
        event_type=type,
        limit=page_limit_or_422(limit, limit_max=events_page_max),
        after=decode_cursor(cursor),
    )
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if len(rows) == limit else None
    return json_response(
        200, EventPage(data=[event_view(r) for r in rows], next_cursor=next_cursor)
    )


async def _event_or_404(request: Request[Any, Any, Any], event_id: str) -> EventRow:
    row = await get_event(
        services_of(request).pool,
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
    found = await deliveries_of(services_of(request).pool, event_id=event.id)
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
    if principal.role not in redeliver_roles:
        raise ProblemError(403, "forbidden", "redelivering needs an admin or operator key")
    body = decode_body(await request_body(request), Redeliver)
    event = await _event_or_404(request, event_id)
    pool = services_of(request).pool
    endpoint_id = None
    if body.endpoint_id is not None:
        endpoint_id = endpoint_uuid(body.endpoint_id)
        if await get_endpoint(pool, tenant_id=principal.tenant_id, endpoint_id=endpoint_id) is None:
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

    return await idempotent(request, kind="redelivery", execute=execute)
