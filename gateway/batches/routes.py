"""Batch payouts: create (JSON or CSV), read with counts and per-item results, messages."""

from __future__ import annotations

import uuid
from typing import Any, Final

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery

from compliance.freezes.service import ensure_active
from gateway.batches import wire as batch_wire
from gateway.batches.parsing import Parsed, parse_csv, parse_json
from gateway.batches.records import BatchRow, get_batch, item_page, list_messages, status_counts
from gateway.batches.service import batch_view
from gateway.http.ids import decode_id
from gateway.http.openapi import ParameterSchemas, RequestExamples, RequestMedia, ResponseLinks
from gateway.http.paging import NumberCursors, limit_schema, number_cursor_schema, page_request
from gateway.http.problems import FieldError, ProblemError, invalid
from gateway.http.requests import json_response, principal_of, request_body
from gateway.runtime import runtime_of

# A 10,000-item batch is about 2 MB of JSON; the rest of the API keeps its own, smaller limit.
batch_request_body_bytes_max = 8 * 1024 * 1024
batch_page_default = 100
csv_content_type = "text/csv"
_booleans = {"true": True, "false": False}
# A batch's items page by index: a cursor is the index the next page starts at.
_item_indexes = NumberCursors(value_max=batch_wire.batch_items_max - 1)


def _atomic_parameter(request: Request[Any, Any, Any], value: str | None) -> bool | None:
    """The `atomic` query parameter: absent, `true` or `false`, given once."""
    if value is None:
        return None
    if len(request.query_params.getall("atomic", [])) > 1 or value not in _booleans:
        raise invalid(
            "atomic", detail="atomic is not a boolean", message="give it once: true or false"
        )
    return _booleans[value]


def _items_of(
    request: Request[Any, Any, Any], raw: bytes, atomic_parameter: str | None
) -> tuple[bool, list[Parsed]]:
    """Whether the batch is all or nothing, and its items, parsed or refused each.

    A CSV upload can only say `atomic` in the query; a JSON batch in its body or the query,
    and where it says it in both, they must agree: a batch never runs item by item when one
    of its two says all or nothing."""
    atomic = _atomic_parameter(request, atomic_parameter)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == csv_content_type:
        return bool(atomic), parse_csv(raw)
    body_atomic, parsed = parse_json(raw)
    if atomic is not None and body_atomic is not None and atomic != body_atomic:
        raise ProblemError(
            422,
            "conflicting_parameters",
            f"the query says atomic={'true' if atomic else 'false'}, the body the opposite",
            errors=[FieldError(field="atomic", message="give one value, or the same in both")],
        )
    chosen = body_atomic if body_atomic is not None else atomic
    return bool(chosen), parsed


@post(
    "/v1/batches",
    summary="Pay up to 10,000 recipients in one request, FX netted per currency pair",
    tags=["batches"],
    request_max_body_size=batch_request_body_bytes_max,
)
async def create_batch_route(
    request: Request[Any, Any, Any], atomic: FromQuery[str | None] = None
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

parameter_schemas: Final[ParameterSchemas] = {
    ("/v1/batches", "atomic"): {
        "type": "boolean",
        "description": (
            "All or nothing. A CSV upload says it here only; a JSON batch here or in its "
            "body, and where both say it they must agree (else 422 conflicting_parameters). "
            "Left out everywhere, the batch runs item by item."
        ),
    },
    ("/v1/batches/{batch_id}", "cursor"): number_cursor_schema,
    ("/v1/batches/{batch_id}", "limit"): limit_schema(batch_wire.batch_page_max),
}
# A CSV upload as the document describes it: its rows, as objects of column to cell, under
# a header naming the columns (a client or a fuzzer writes the CSV from them). Cells are
# checked row by row, a refused row is refused in the answer's item, so any text goes; other
# columns are ignored.
_csv_cell = {"type": "string"}
request_media: Final[RequestMedia] = {
    ("/v1/batches", "post"): {
        csv_content_type: {
            "schema": {
                "type": "array",
                "minItems": 1,
                "maxItems": batch_wire.batch_items_max,
                "items": {
                    "type": "object",
                    "required": list(batch_wire.csv_columns),
                    "properties": dict.fromkeys(batch_wire.csv_columns, _csv_cell),
                    "additionalProperties": _csv_cell,
                    "propertyNames": {"type": "string", "minLength": 1},
                },
                "description": (
                    "CSV: a header row naming the columns "
                    f"{', '.join(batch_wire.csv_columns)} in any order (others are ignored), "
                    "then one item a row; this schema describes the rows. `atomic` is the "
                    "query parameter."
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
