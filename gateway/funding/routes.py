"""Funding routes: a tenant's funding instructions, and the admin plane's bank statements
(ingest a camt.053/054 file, list statements, read one with its entries)."""

from __future__ import annotations

from typing import Any, Final

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery

from gateway.funding import wire
from gateway.funding.records import entries_page_max, entry_positions, statements_page_max
from gateway.http.ids import decode_id
from gateway.http.openapi import ParameterSchemas, RequestMedia
from gateway.http.paging import (
    limit_schema,
    number_cursor_schema,
    page_request,
    position_cursor_schema,
    positions,
)
from gateway.http.requests import admin_actor_of, json_response, principal_of, request_body
from gateway.http.wire import currency_parameter_or_422, enabled_currency_schema
from gateway.runtime import runtime_of
from rails.statements.camt import file_bytes_max, supported_messages

xml_content_types = ("application/xml", "text/xml")
page_default = 100


@get(
    "/v1/funding-instructions",
    summary="Where to send money to fund the wallet, and the reference to quote",
    tags=["funding"],
)
async def read_funding_instructions(
    request: Request[Any, Any, Any], currency: FromQuery[str]
) -> Response[bytes]:
    instructions = runtime_of(request).funding.instructions(
        principal_of(request).tenant_id, currency_parameter_or_422(currency)
    )
    return json_response(200, instructions)


@post(
    "/admin/v1/statements",
    summary="Ingest a bank statement (camt.053) or debit/credit notification (camt.054)",
    tags=["admin"],
    request_max_body_size=file_bytes_max,
    status_code=200,
)
async def ingest_statement(request: Request[Any, Any, Any]) -> Response[bytes]:
    runtime = runtime_of(request)
    ingestion = await runtime.funding.ingest(
        await request_body(request), actor=admin_actor_of(request)
    )
    return json_response(200, ingestion)


@get("/admin/v1/statements", summary="Bank statements, oldest first", tags=["admin"])
async def list_statements(
    request: Request[Any, Any, Any],
    limit: FromQuery[int] = page_default,
    cursor: FromQuery[str | None] = None,
) -> Response[bytes]:
    page = await runtime_of(request).funding.statements(
        page_request(positions, limit=limit, cursor=cursor, limit_max=statements_page_max)
    )
    return json_response(200, wire.BankStatementPage(data=page.items, next_cursor=page.next_cursor))


@get(
    "/admin/v1/statements/{statement_id:str}",
    summary="A bank statement and its entries, in its order",
    tags=["admin"],
)
async def read_statement(
    request: Request[Any, Any, Any],
    statement_id: FromPath[str],
    limit: FromQuery[int] = page_default,
    cursor: FromQuery[str | None] = None,
) -> Response[bytes]:
    page = page_request(entry_positions, limit=limit, cursor=cursor, limit_max=entries_page_max)
    detail = await runtime_of(request).funding.statement(decode_id("stmt", statement_id), page)
    return json_response(200, detail)


route_handlers: Final = (
    read_funding_instructions,
    ingest_statement,
    list_statements,
    read_statement,
)
request_bodies: Final[dict[tuple[str, str], type[msgspec.Struct]]] = {}
response_bodies: Final[dict[tuple[str, str], tuple[str, type[msgspec.Struct]]]] = {
    ("/v1/funding-instructions", "get"): ("200", wire.FundingInstructions),
    ("/admin/v1/statements", "post"): ("200", wire.Ingestion),
    ("/admin/v1/statements", "get"): ("200", wire.BankStatementPage),
    ("/admin/v1/statements/{statement_id}", "get"): ("200", wire.BankStatementDetail),
}
parameter_schemas: Final[ParameterSchemas] = {
    ("/v1/funding-instructions", "currency"): enabled_currency_schema,
    ("/admin/v1/statements", "limit"): limit_schema(statements_page_max),
    ("/admin/v1/statements", "cursor"): position_cursor_schema,
    ("/admin/v1/statements/{statement_id}", "limit"): limit_schema(entries_page_max),
    ("/admin/v1/statements/{statement_id}", "cursor"): number_cursor_schema,
}
_statement_file = {
    "schema": {
        "type": "string",
        "maxLength": file_bytes_max,
        "description": (
            "The bank's file as it came: an ISO 20022 "
            f"{', '.join(sorted(supported_messages))} document, valid against its official"
            " schema, without a DOCTYPE. Entries are credited, recorded or put in suspense"
            " as docs/guides/funding.md says."
        ),
    }
}
request_media: Final[RequestMedia] = {
    ("/admin/v1/statements", "post"): dict.fromkeys(xml_content_types, _statement_file),
}
