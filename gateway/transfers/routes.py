"""Recipients and transfers: create, read, list, cancel, and the ISO 20022 messages."""

from __future__ import annotations

import uuid
from typing import Any, Final

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery
from litestar.types import Scope

from compliance.freezes.service import ensure_active
from gateway.http.idempotency import header_key
from gateway.http.ids import decode_id, encode_id
from gateway.http.openapi import ParameterSchemas, RequestExamples, ResponseLinks, enum_schema
from gateway.http.paging import (
    limit_schema,
    page_limit_or_422,
    page_request,
    position_cursor_schema,
    positions,
)
from gateway.http.problems import ProblemError, from_domain_error, invalid
from gateway.http.ratelimit import Principal
from gateway.http.requests import (
    Reply,
    decode_body,
    json_response,
    principal_of,
    request_body,
    scope_header,
)
from gateway.runtime import Runtime, runtime_of
from gateway.transfers import wire
from gateway.transfers.recipients import RecipientRecord, normalise
from gateway.transfers.records import TransferRow, get_transfer, list_messages, list_transfers
from gateway.transfers.service import transfer_view
from rails.bank_details import InvalidBankDetails
from rails.corridors import UnsupportedCorridor

transfers_page_max = 100


def _recipient_view(record: RecipientRecord) -> wire.Recipient:
    return wire.Recipient(
        id=encode_id("rcp", record.id),
        name=record.name,
        country=record.country,
        currency=record.currency,
        bank_details=record.bank_details,
        status=record.status,
        created_at=record.created_at,
    )


@post(
    "/v1/recipients", summary="Create a recipient with validated bank details", tags=["recipients"]
)
async def create_recipient_route(request: Request[Any, Any, Any]) -> Response[bytes]:
    runtime = runtime_of(request)
    body = decode_body(await request_body(request), wire.RecipientCreate)
    principal = principal_of(request)
    try:
        details = normalise(
            country=body.country, currency=body.currency.upper(), details=body.bank_details
        )
    except InvalidBankDetails as error:
        raise from_domain_error(error) from None
    except UnsupportedCorridor as error:
        # The corridor is the country's (in the currency asked): the problem names it.
        raise from_domain_error(error, field="country") from None

    async def execute(recipient_id: int) -> tuple[int, msgspec.Struct]:
        record = await runtime.recipients.create(
            tenant_id=principal.tenant_id,
            region=principal.compliance_region,
            recipient_id=recipient_id,
            name=body.name,
            country=body.country,
            currency=body.currency.upper(),
            details=details,
        )
        return 201, _recipient_view(record)

    return await runtime.idempotency.response(request, kind="recipient", execute=execute)


@get("/v1/recipients/{recipient_id:str}", summary="A recipient", tags=["recipients"])
async def read_recipient(
    request: Request[Any, Any, Any], recipient_id: FromPath[str]
) -> Response[bytes]:
    principal = principal_of(request)
    record = await runtime_of(request).recipients.load(
        tenant_id=principal.tenant_id,
        region=principal.compliance_region,
        recipient_id=decode_id("rcp", recipient_id),
    )
    if record is None:
        raise ProblemError(404, "not_found", f"no recipient {recipient_id[:64]}")
    return json_response(200, _recipient_view(record))


@post("/v1/transfers", summary="Pay a recipient from a quote", tags=["transfers"])
async def create_transfer_route(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Served by `gateway.http.hot_routes` in the running gateway; here for the OpenAPI document
    and for an app called without that dispatch."""
    reply = await create_transfer_reply(
        runtime_of(request), principal_of(request), request.scope, await request_body(request)
    )
    return reply.response()


async def create_transfer_reply(
    runtime: Runtime, principal: Principal, scope: Scope, raw: bytes
) -> Reply:
    ensure_active(principal)
    body = decode_body(raw, wire.TransferCreate)

    keyed = scope_header(scope, header_key) is not None

    async def execute(transfer_id: int) -> tuple[int, msgspec.Struct]:
        created = await runtime.transfers.create(
            principal, transfer_id=transfer_id, body=body, retry_reuses_id=keyed
        )
        return 201, created

    return await runtime.idempotency.reply(
        principal, scope, method="POST", body=raw, kind="transfer", execute=execute
    )


async def _transfer_or_404(request: Request[Any, Any, Any], transfer_id: str) -> TransferRow:
    principal = principal_of(request)
    row = await get_transfer(
        runtime_of(request).pool,
        region=principal.compliance_region,
        tenant_id=principal.tenant_id,
        transfer_id=uuid.UUID(int=decode_id("tr", transfer_id)),
    )
    if row is None:
        raise ProblemError(404, "not_found", f"no transfer {transfer_id[:64]}")
    return row


@get("/v1/transfers/{transfer_id:str}", summary="A transfer", tags=["transfers"])
async def read_transfer(
    request: Request[Any, Any, Any], transfer_id: FromPath[str]
) -> Response[bytes]:
    return json_response(200, transfer_view(await _transfer_or_404(request, transfer_id)))


@get("/v1/transfers", summary="The tenant's transfers", tags=["transfers"])
async def list_transfers_route(
    request: Request[Any, Any, Any],
    status: FromQuery[str | None] = None,
    limit: FromQuery[int] = 50,
    cursor: FromQuery[str | None] = None,
) -> Response[bytes]:
    # The limit is checked before the status and the cursor after it, as it always was, so a
    # request wrong twice is told about the same field.
    page_limit_or_422(limit, limit_max=transfers_page_max)
    if status is not None and status not in wire.transfer_statuses:
        raise invalid("status", detail="unknown status", message="not a transfer status")
    page = await list_transfers(
        runtime_of(request).pool,
        tenant_id=principal_of(request).tenant_id,
        status=status,
        page=page_request(positions, limit=limit, cursor=cursor, limit_max=transfers_page_max),
    )
    return json_response(
        200,
        wire.TransferPage(
            data=[transfer_view(r) for r in page.items], next_cursor=page.next_cursor
        ),
    )


@post(
    "/v1/transfers/{transfer_id:str}/cancel", summary="Cancel before submission", tags=["transfers"]
)
async def cancel_transfer_route(
    request: Request[Any, Any, Any], transfer_id: FromPath[str]
) -> Response[bytes]:
    decode_body(await request_body(request), wire.TransferCancel)
    row = await _transfer_or_404(request, transfer_id)
    runtime = runtime_of(request)

    async def execute(_: int) -> tuple[int, msgspec.Struct]:
        return 200, transfer_view(await runtime.transfers.cancel(row))

    return await runtime.idempotency.response(
        request, kind=f"cancel-{transfer_id}", execute=execute
    )


@get(
    "/v1/transfers/{transfer_id:str}/messages",
    summary="ISO 20022 messages exchanged",
    tags=["transfers"],
)
async def transfer_messages(
    request: Request[Any, Any, Any], transfer_id: FromPath[str]
) -> Response[bytes]:
    row = await _transfer_or_404(request, transfer_id)
    records = await list_messages(
        runtime_of(request).pool,
        region=row.compliance_region,
        tenant_id=row.tenant_id,
        transfer_id=row.id,
    )
    return json_response(
        200,
        wire.TransferMessageList(
            data=[
                wire.TransferMessage(
                    type=r["message_type"],
                    direction=r["direction"],
                    attempt=r["attempt"],
                    xml=r["xml"],
                    created_at=r["created_at"],
                )
                for r in records
            ]
        ),
    )


route_handlers: Final = (
    create_recipient_route,
    read_recipient,
    create_transfer_route,
    read_transfer,
    list_transfers_route,
    cancel_transfer_route,
    transfer_messages,
)
request_bodies: Final[dict[tuple[str, str], type[msgspec.Struct]]] = {
    ("/v1/recipients", "post"): wire.RecipientCreate,
    ("/v1/transfers", "post"): wire.TransferCreate,
    ("/v1/transfers/{transfer_id}/cancel", "post"): wire.TransferCancel,
}
response_bodies: Final[dict[tuple[str, str], tuple[str, type[msgspec.Struct]]]] = {
    ("/v1/recipients", "post"): ("201", wire.Recipient),
    ("/v1/recipients/{recipient_id}", "get"): ("200", wire.Recipient),
    ("/v1/transfers", "post"): ("201", wire.Transfer),
    ("/v1/transfers", "get"): ("200", wire.TransferPage),
    ("/v1/transfers/{transfer_id}", "get"): ("200", wire.Transfer),
    ("/v1/transfers/{transfer_id}/cancel", "post"): ("200", wire.Transfer),
    ("/v1/transfers/{transfer_id}/messages", "get"): ("200", wire.TransferMessageList),
}

parameter_schemas: Final[ParameterSchemas] = {
    ("/v1/transfers", "status"): enum_schema(wire.transfer_statuses),
    ("/v1/transfers", "cursor"): position_cursor_schema,
    ("/v1/transfers", "limit"): limit_schema(transfers_page_max),
}

request_examples: Final[RequestExamples] = {
    ("/v1/recipients", "post"): {
        "name": "Lieferant GmbH",
        "country": "DE",
        "currency": "EUR",
        "bank_details": {"iban": "DE89370400440532013000", "bic": "COBADEFFXXX"},
    },
    ("/v1/transfers", "post"): {
        "quote_id": "quote_01JD3XK5Q8N2P7R4S6T9V0W1Y2",
        "recipient_id": "rcp_01JD3XK9A2B3C4D5E6F7G8H9J0",
        "reference": "INV-2026-0042",
    },
    ("/v1/transfers/{transfer_id}/cancel", "post"): {},
}

_transfer_id = {"transfer_id": "$response.body#/id"}
response_links: Final[ResponseLinks] = {
    ("/v1/recipients", "post"): {
        "GetRecipient": (
            ("/v1/recipients/{recipient_id}", "get"),
            {"recipient_id": "$response.body#/id"},
        ),
    },
    ("/v1/transfers", "post"): {
        "GetTransfer": (("/v1/transfers/{transfer_id}", "get"), _transfer_id),
        "CancelTransfer": (("/v1/transfers/{transfer_id}/cancel", "post"), _transfer_id),
        "GetTransferMessages": (("/v1/transfers/{transfer_id}/messages", "get"), _transfer_id),
    },
}
