"""Batch payouts: create (JSON or CSV), read with counts and per-item results, messages."""

from __future__ import annotations

import uuid
from typing import Any, Final

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery

from compliance.freezes.service import ensure_active
from gateway.batches import wire as batch_wire
from gateway.batches.parsing import Parsed, csv_columns, parse_csv, parse_json
from gateway.batches.records import BatchRow, get_batch, item_page, list_messages, status_counts
from gateway.batches.service import batch_view
from gateway.http.ids import decode_id
from gateway.http.openapi import ParameterSchemas, RequestExamples, RequestMedia, ResponseLinks
from gateway.http.paging import NumberCursors, number_cursor_schema, page_request
from gateway.http.problems import ProblemError, invalid
from gateway.http.requests import json_response, principal_of, request_body
from gateway.runtime import runtime_of

# A 10,000-item batch is about 2 MB of JSON; the rest of the API keeps its own, smaller limit.
batch_request_body_bytes_max = 8 * 1024 * 1024
batch_page_default = 100
csv_content_type = "text/csv"
# A batch's items page by index: a cursor is the index the next page starts at.
_item_indexes = NumberCursors(value_max=batch_wire.batch_items_max - 1)


def _items_of(
    request: Request[Any, Any, Any], raw: bytes, atomic: bool | None
) -> tuple[bool, list[Parsed]]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == csv_content_type:
        return bool(atomic), parse_csv(raw)
    if atomic is not None:
        raise invalid(
            "atomic",
            detail="a JSON batch says `atomic` in its body; the query parameter is for CSV uploads",
            message="give it in the JSON body",
        )
    return parse_json(raw)


@post(
    "/v1/batches",
    summary="Pay up to 10,000 recipients in one request, FX netted per currency pair",
    tags=["batches"],
    request_max_body_size=batch_request_body_bytes_max,
)
async def create_batch_route(
    request: Request[Any, Any, Any], atomic: FromQuery[bool | None] = None
) -> Response[bytes]:
    runtime = runtime_of(request)
    principal = principal_of(request)
    ensure_active(principal)
    is_atomic, parsed = _items_of(request, await request_body(request), atomic)

    async def execute(batch_id: int) -> tuple[int, msgspec.Struct]:
        view = await runtime.batches.accept(
            principal, batch_id=batch_id, atomic=is_atomic, parsed=parsed
        )
        return 201, view

    return await runtime.idempotency.response(request, kind="batch", execute=execute)


async def _batch_or_404(request: Request[Any, Any, Any], batch_id: str) -> BatchRow:
    principal = principal_of(request)
    batch = await get_batch(
        runtime_of(request).pool,
        region=principal.compliance_region,
        tenant_id=principal.tenant_id,
        batch_id=uuid.UUID(int=decode_id("batch", batch_id)),
    )
    if batch is None:
        raise ProblemError(404, "not_found", f"no batch {batch_id[:64]}")
    return batch


@get("/v1/batches/{batch_id:str}", summary="A batch: counts and per-item results", tags=["batches"])
async def read_batch(
    request: Request[Any, Any, Any],
    batch_id: FromPath[str],
    limit: FromQuery[int] = batch_page_default,
    cursor: FromQuery[str | None] = None,
) -> Response[bytes]:
    page = page_request(
        _item_indexes, limit=limit, cursor=cursor, limit_max=batch_wire.batch_page_max
    )
    batch = await _batch_or_404(request, batch_id)
    pool = runtime_of(request).pool
    results = await item_page(pool, batch, page)
    return json_response(
        200,
        batch_view(
            batch,
            results.items,
            next_cursor=results.next_cursor,
            counts=await status_counts(pool, batch),
        ),
    )


@get(
    "/v1/batches/{batch_id:str}/messages",
    summary="The batch's pain.001 messages, one per rail",
    tags=["batches"],
)
async def batch_messages(
    request: Request[Any, Any, Any], batch_id: FromPath[str]
) -> Response[bytes]:
    batch = await _batch_or_404(request, batch_id)
    records = await list_messages(runtime_of(request).pool, batch)
    return json_response(
        200,
        batch_wire.BatchMessageList(
            data=[
                batch_wire.BatchMessage(
                    type=r["message_type"],
                    rail=r["rail"],
                    currency=r["currency"],
                    number_of_transactions=r["number_of_transactions"],
                    control_sum=int(r["control_sum_minor"]),
                    xml=r["xml"],
                    created_at=r["created_at"],
                )
                for r in records
            ]
        ),
    )


route_handlers: Final = (create_batch_route, read_batch, batch_messages)
request_bodies: Final[dict[tuple[str, str], type[msgspec.Struct]]] = {
    ("/v1/batches", "post"): batch_wire.BatchCreate,
}
response_bodies: Final[dict[tuple[str, str], tuple[str, type[msgspec.Struct]]]] = {
    ("/v1/batches", "post"): ("201", batch_wire.Batch),
    ("/v1/batches/{batch_id}", "get"): ("200", batch_wire.Batch),
    ("/v1/batches/{batch_id}/messages", "get"): ("200", batch_wire.BatchMessageList),
}

# `atomic` has one place for each media type: a JSON batch says it in its body (the query
# parameter beside a JSON body is refused with 422, so no request says it twice), and a CSV
# upload, whose body has no room for it, in the query.
parameter_schemas: Final[ParameterSchemas] = {
    ("/v1/batches/{batch_id}", "cursor"): number_cursor_schema,
    ("/v1/batches", "atomic"): {
        "type": "boolean",
        "default": False,
        "description": (
            f"For a {csv_content_type} upload only: all or nothing. A JSON batch says "
            "`atomic` in its body, and this parameter beside a JSON body is refused (422)."
        ),
    },
}
request_media: Final[RequestMedia] = {
    ("/v1/batches", "post"): {
        csv_content_type: {
            "schema": {
                "type": "string",
                "description": (
                    f"A header row naming the columns {', '.join(csv_columns)}, then one "
                    "item a row; `atomic` is the query parameter."
                ),
            }
        }
    }
}

request_examples: Final[RequestExamples] = {
    ("/v1/batches", "post"): {
        "atomic": False,
        "items": [
            {
                "recipient_id": "rcp_01JD3XK9A2B3C4D5E6F7G8H9J0",
                "source_currency": "EUR",
                "target_currency": "IDR",
                "source_amount": 50000,
                "reference": "PAYROLL-07-001",
            },
            {
                "recipient_id": "rcp_01JD3XKC1D2E3F4G5H6J7K8M9N",
                "source_currency": "EUR",
                "target_currency": "IDR",
                "target_amount": 2_000_000_00,
                "reference": "PAYROLL-07-002",
            },
        ],
    },
}

_batch_id = {"batch_id": "$response.body#/id"}
response_links: Final[ResponseLinks] = {
    ("/v1/batches", "post"): {
        "GetBatch": (("/v1/batches/{batch_id}", "get"), _batch_id),
        "GetBatchMessages": (("/v1/batches/{batch_id}/messages", "get"), _batch_id),
    },
}
