"""Schedules for tenants: a customer's cron pulls and balance-threshold triggers, created,
listed and deleted."""

from __future__ import annotations

from typing import Any, Final

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.params import FromPath, FromQuery

from compliance.freezes.service import ensure_active
from gateway.http.ids import decode_id
from gateway.http.openapi import ParameterSchemas, RequestExamples, ResponseLinks
from gateway.http.paging import (
    limit_schema,
    page_limit_or_422,
    page_request,
    position_cursor_schema,
    positions,
)
from gateway.http.requests import decode_body, json_response, principal_of, request_body
from gateway.runtime import runtime_of
from gateway.schedules import wire
from gateway.schedules.records import schedules_page_max
from gateway.schedules.service import customer_prefix, schedule_prefix

schedules_path = "/v1/customers/{customer_id}/schedules"
schedule_path = "/v1/customers/{customer_id}/schedules/{schedule_id}"


@post(
    "/v1/customers/{customer_id:str}/schedules",
    summary="Schedule a customer's pulls: on a cron expression, or above a balance",
    tags=["schedules"],
)
async def create_schedule(
    request: Request[Any, Any, Any], customer_id: FromPath[str]
) -> Response[bytes]:
    runtime = runtime_of(request)
    principal = principal_of(request)
    ensure_active(principal)
    customer = decode_id(customer_prefix, customer_id)
    body = decode_body(await request_body(request), wire.ScheduleCreate)

    async def execute(schedule_id: int) -> tuple[int, msgspec.Struct]:
        created = await runtime.schedules.create(
            principal, customer_id=customer, schedule_id=schedule_id, body=body
        )
        return 201, created

    return await runtime.idempotency.response(request, kind="schedule", execute=execute)


@get(
    "/v1/customers/{customer_id:str}/schedules",
    summary="A customer's active schedules",
    tags=["schedules"],
)
async def list_schedules(
    request: Request[Any, Any, Any],
    customer_id: FromPath[str],
    limit: FromQuery[int] = 50,
    cursor: FromQuery[str | None] = None,
) -> Response[bytes]:
    page_limit_or_422(limit, limit_max=schedules_page_max)
    page = await runtime_of(request).schedules.list_schedules(
        principal_of(request),
        customer_id=decode_id(customer_prefix, customer_id),
        page=page_request(positions, limit=limit, cursor=cursor, limit_max=schedules_page_max),
    )
    return json_response(200, wire.SchedulePage(data=page.items, next_cursor=page.next_cursor))


@delete(
    "/v1/customers/{customer_id:str}/schedules/{schedule_id:str}",
    summary="Delete a schedule; nothing starts for it afterwards",
    tags=["schedules"],
    status_code=200,
)
async def delete_schedule(
    request: Request[Any, Any, Any], customer_id: FromPath[str], schedule_id: FromPath[str]
) -> Response[bytes]:
    deleted = await runtime_of(request).schedules.delete(
        principal_of(request),
        customer_id=decode_id(customer_prefix, customer_id),
        schedule_id=decode_id(schedule_prefix, schedule_id),
    )
    return json_response(200, deleted)


route_handlers: Final = (create_schedule, list_schedules, delete_schedule)
request_bodies: Final[dict[tuple[str, str], type[msgspec.Struct]]] = {
    (schedules_path, "post"): wire.ScheduleCreate,
}
response_bodies: Final[dict[tuple[str, str], tuple[str, type[msgspec.Struct]]]] = {
    (schedules_path, "post"): ("201", wire.Schedule),
    (schedules_path, "get"): ("200", wire.SchedulePage),
    (schedule_path, "delete"): ("200", wire.Schedule),
}
parameter_schemas: Final[ParameterSchemas] = {
    (schedules_path, "limit"): limit_schema(schedules_page_max),
    (schedules_path, "cursor"): position_cursor_schema,
}
request_examples: Final[RequestExamples] = {
    (schedules_path, "post"): {
        "kind": "cron",
        "mandate_id": "mdt_01JD3XK5Q8N2P7R4S6T9V0W1Y2",
        "amount": 50000,
        "cron": "0 9 1 * *",
        "timezone": "Europe/Berlin",
        "reference": "monthly savings",
    },
}
# No links: deleting a schedule needs its customer's id and its own, and a link here would
# name two path parameters the answer carries; the document's links each lead by one.
response_links: Final[ResponseLinks] = {}
