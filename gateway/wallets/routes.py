"""Wallet routes: deposits (sandbox), two-phase holds, balances, statements, and the admin
plane's liquidity funding.

`POST /v1/holds` is on the payment path: `gateway.http.hot_routes` serves it straight from
ASGI with `create_hold_reply`, the same function its Litestar handler calls.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery
from litestar.types import Scope

from compliance.freezes.service import ensure_active
from gateway.http.ids import decode_id
from gateway.http.openapi import ParameterSchemas, RequestExamples, ResponseLinks
from gateway.http.paging import ledger_timestamps, limit_schema, number_cursor_schema, page_request
from gateway.http.ratelimit import Principal
from gateway.http.requests import (
    Reply,
    admin_actor_of,
    decode_body,
    json_response,
    principal_of,
    request_body,
)
from gateway.http.wire import currency_parameter_or_422, enabled_currency_schema
from gateway.runtime import Runtime, runtime_of
from gateway.wallets import wire
from ledger.statements import statement_limit_max

statement_limit_default = 100


@post("/v1/deposits", summary="Credit the wallet (sandbox only)", tags=["deposits"])
async def create_deposit(request: Request[Any, Any, Any]) -> Response[bytes]:
    runtime = runtime_of(request)
    runtime.wallets.ensure_deposits_enabled()
    principal = principal_of(request)
    ensure_active(principal)
    body = decode_body(await request_body(request), wire.DepositCreate)

    async def execute(deposit_id: int) -> tuple[int, msgspec.Struct]:
        return 201, await runtime.wallets.deposit(principal, deposit_id=deposit_id, body=body)

    return await runtime.idempotency.response(request, kind="deposit", execute=execute)


@post("/v1/holds", summary="Hold funds on the wallet", tags=["holds"])
async def create_hold(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Served by `gateway.http.hot_routes` in the running gateway; here for the OpenAPI
    document and for an app called without that dispatch."""
    reply = await create_hold_reply(
        runtime_of(request), principal_of(request), request.scope, await request_body(request)
    )
    return reply.response()


async def create_hold_reply(
    runtime: Runtime, principal: Principal, scope: Scope, raw: bytes
) -> Reply:
    ensure_active(principal)
    body = decode_body(raw, wire.HoldCreate)

    async def execute(hold_id: int) -> tuple[int, msgspec.Struct]:
        return 201, await runtime.wallets.hold(principal, hold_id=hold_id, body=body)

    return await runtime.idempotency.reply(
        principal, scope, method="POST", body=raw, kind="hold", execute=execute
    )


@get("/v1/holds/{hold_id:str}", summary="A hold and its state", tags=["holds"])
async def read_hold(request: Request[Any, Any, Any], hold_id: FromPath[str]) -> Response[bytes]:
    hold = await runtime_of(request).wallets.read_hold(
        principal_of(request), decode_id("hold", hold_id)
    )
    return json_response(200, hold)


@post("/v1/holds/{hold_id:str}/capture", summary="Capture a hold, fully or partly", tags=["holds"])
async def capture_hold(request: Request[Any, Any, Any], hold_id: FromPath[str]) -> Response[bytes]:
    body = decode_body(await request_body(request), wire.HoldCapture)
    return await _resolve_hold(request, hold_id, capture=True, amount_minor=body.amount)


@post("/v1/holds/{hold_id:str}/void", summary="Release a hold", tags=["holds"])
async def void_hold(request: Request[Any, Any, Any], hold_id: FromPath[str]) -> Response[bytes]:
    decode_body(await request_body(request), wire.HoldVoid)
    return await _resolve_hold(request, hold_id, capture=False, amount_minor=None)


async def _resolve_hold(
    request: Request[Any, Any, Any], hold_id_text: str, *, capture: bool, amount_minor: int | None
) -> Response[bytes]:
    runtime = runtime_of(request)
    principal = principal_of(request)
    hold_id = decode_id("hold", hold_id_text)
    ensure_active(principal)

    async def execute(_: int) -> tuple[int, msgspec.Struct]:
        hold = await runtime.wallets.resolve_hold(
            principal, hold_id=hold_id, capture=capture, amount_minor=amount_minor
        )
        return 200, hold

    kind = f"hold-{'capture' if capture else 'void'}-{hold_id}"
    return await runtime.idempotency.response(request, kind=kind, execute=execute)


@get("/v1/balances", summary="Balances of every wallet", tags=["balances"])
async def list_balances(request: Request[Any, Any, Any]) -> Response[bytes]:
    balances = await runtime_of(request).wallets.balances(principal_of(request).tenant_id)
    return json_response(200, balances)


@get("/v1/statements", summary="Ledger history of one wallet", tags=["statements"])
async def read_statement(
    request: Request[Any, Any, Any],
    currency: FromQuery[str],
    limit: FromQuery[int] = statement_limit_default,
    cursor: FromQuery[str | None] = None,
) -> Response[bytes]:
    statement = await runtime_of(request).wallets.statement(
        principal_of(request).tenant_id,
        currency=currency_parameter_or_422(currency),
        page=page_request(
            ledger_timestamps, limit=limit, cursor=cursor, limit_max=statement_limit_max
        ),
    )
    return json_response(200, statement)


@post("/admin/v1/liquidity", summary="Fund the platform's FX position", tags=["admin"])
async def fund_liquidity(request: Request[Any, Any, Any]) -> Response[bytes]:
    body = decode_body(await request_body(request), wire.LiquidityFund)
    funding = await runtime_of(request).wallets.fund_liquidity(
        actor=admin_actor_of(request),
        currency=body.currency,
        amount_minor=body.amount,
        reference=body.reference,
    )
    return json_response(201, funding)


route_handlers: Final = (
    list_balances,
    read_statement,
    create_deposit,
    create_hold,
    read_hold,
    capture_hold,
    void_hold,
    fund_liquidity,
)
# Request and response bodies by operation, for the OpenAPI document (handlers decode and
# encode bodies themselves).
request_bodies: Final[dict[tuple[str, str], type[msgspec.Struct]]] = {
    ("/v1/deposits", "post"): wire.DepositCreate,
    ("/v1/holds", "post"): wire.HoldCreate,
    ("/v1/holds/{hold_id}/capture", "post"): wire.HoldCapture,
    ("/v1/holds/{hold_id}/void", "post"): wire.HoldVoid,
    ("/admin/v1/liquidity", "post"): wire.LiquidityFund,
}
response_bodies: Final[dict[tuple[str, str], tuple[str, type[msgspec.Struct]]]] = {
    ("/v1/balances", "get"): ("200", wire.BalanceList),
    ("/v1/statements", "get"): ("200", wire.StatementPage),
    ("/v1/deposits", "post"): ("201", wire.Deposit),
    ("/v1/holds", "post"): ("201", wire.Hold),
    ("/v1/holds/{hold_id}", "get"): ("200", wire.Hold),
    ("/v1/holds/{hold_id}/capture", "post"): ("200", wire.Hold),
    ("/v1/holds/{hold_id}/void", "post"): ("200", wire.Hold),
    ("/admin/v1/liquidity", "post"): ("201", wire.Funding),
}

parameter_schemas: Final[ParameterSchemas] = {
    ("/v1/statements", "currency"): enabled_currency_schema,
    ("/v1/statements", "limit"): limit_schema(statement_limit_max),
    ("/v1/statements", "cursor"): number_cursor_schema,
}

request_examples: Final[RequestExamples] = {
    ("/v1/deposits", "post"): {"currency": "EUR", "amount": 250000, "reference": "top-up 42"},
    ("/v1/holds", "post"): {
        "currency": "EUR",
        "amount": 12500,
        "timeout_seconds": 3600,
        "reference": "card auth 7781",
    },
    ("/v1/holds/{hold_id}/capture", "post"): {"amount": 10000},
    ("/v1/holds/{hold_id}/void", "post"): {},
    ("/admin/v1/liquidity", "post"): {"currency": "IDR", "amount": 10**12, "reference": "prefund"},
}

_hold_id = {"hold_id": "$response.body#/id"}
response_links: Final[ResponseLinks] = {
    ("/v1/holds", "post"): {
        "GetHold": (("/v1/holds/{hold_id}", "get"), _hold_id),
        "CaptureHold": (("/v1/holds/{hold_id}/capture", "post"), _hold_id),
        "VoidHold": (("/v1/holds/{hold_id}/void", "post"), _hold_id),
    },
}
