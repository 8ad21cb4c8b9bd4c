"""Quote routes: create and read FX quotes, and the admin plane's rate table.

`POST /v1/quotes` is on the payment path: `gateway.http.hot_routes` serves it straight from
ASGI with `create_quote_reply`, the same function its Litestar handler calls.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from litestar import Request, Response, get, post, put
from litestar.params import FromPath
from litestar.types import Scope

from gateway.http.ids import decode_id
from gateway.http.openapi import RequestExamples, ResponseLinks
from gateway.http.problems import ProblemError, from_domain_error, invalid
from gateway.http.ratelimit import Principal
from gateway.http.requests import (
    Reply,
    admin_actor_of,
    decode_body,
    json_response,
    principal_of,
    request_body,
)
from gateway.http.wire import Health
from gateway.quotes import wire
from gateway.runtime import Runtime, runtime_of
from ledger.errors import DomainError


@post("/v1/quotes", summary="Quote a conversion and lock its rate", tags=["quotes"])
async def create_quote(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Served by `gateway.http.hot_routes` in the running gateway; here for the OpenAPI
    document and for an app called without that dispatch."""
    reply = await create_quote_reply(
        runtime_of(request), principal_of(request), request.scope, await request_body(request)
    )
    return reply.response()


async def create_quote_reply(
    runtime: Runtime, principal: Principal, scope: Scope, raw: bytes
) -> Reply:
    body = decode_body(raw, wire.QuoteCreate)
    if (body.source_amount is None) == (body.target_amount is None):
        raise invalid(
            "source_amount",
            detail="give exactly one amount",
            message="exactly one of source_amount and target_amount",
        )
    currency_fields = (
        ("source_currency", body.source_currency),
        ("target_currency", body.target_currency),
    )
    for field, code in currency_fields:
        try:
            runtime.quotes.currencies.get(code)
        except DomainError as error:
            # Two fields hold a currency: the problem names the one at fault.
            raise from_domain_error(error, field=field) from None

    async def execute(quote_id: int) -> tuple[int, msgspec.Struct]:
        return 201, await runtime.quotes.quote(principal, quote_id=quote_id, body=body)

    return await runtime.idempotency.reply(
        principal, scope, method="POST", body=raw, kind="quote", execute=execute
    )


@get(
    "/v1/quotes/{quote_id:str}", summary="A quote and whether it can still be used", tags=["quotes"]
)
async def read_quote(request: Request[Any, Any, Any], quote_id: FromPath[str]) -> Response[bytes]:
    quote = await runtime_of(request).quotes.read(
        principal_of(request), decode_id("quote", quote_id)
    )
    if quote is None:
        raise ProblemError(404, "not_found", f"no quote {quote_id[:64]}")
    return json_response(200, quote)


@put("/admin/v1/fx-rates", summary="Set rates in the internal rate table", tags=["admin"])
async def update_fx_rates(request: Request[Any, Any, Any]) -> Response[bytes]:
    body = decode_body(await request_body(request), wire.FxRatesUpdate)
    await runtime_of(request).quotes.set_rates(actor=admin_actor_of(request), body=body)
    return json_response(200, Health(status="ok"))


route_handlers: Final = (create_quote, read_quote, update_fx_rates)
request_bodies: Final[dict[tuple[str, str], type[msgspec.Struct]]] = {
    ("/v1/quotes", "post"): wire.QuoteCreate,
    ("/admin/v1/fx-rates", "put"): wire.FxRatesUpdate,
}
response_bodies: Final[dict[tuple[str, str], tuple[str, type[msgspec.Struct]]]] = {
    ("/v1/quotes", "post"): ("201", wire.Quote),
    ("/v1/quotes/{quote_id}", "get"): ("200", wire.Quote),
    ("/admin/v1/fx-rates", "put"): ("200", Health),
}

request_examples: Final[RequestExamples] = {
    ("/v1/quotes", "post"): {
        "source_currency": "EUR",
        "target_currency": "IDR",
        "source_amount": 100000,
    },
    ("/admin/v1/fx-rates", "put"): {
        "rates": {"USD/EUR": "0.92", "USD/IDR": "15650.5"},
        "observed_at": "2026-01-15T09:30:00Z",
    },
}

response_links: Final[ResponseLinks] = {
    ("/v1/quotes", "post"): {
        "GetQuote": (("/v1/quotes/{quote_id}", "get"), {"quote_id": "$response.body#/id"}),
        "CreateTransfer": (
            ("/v1/transfers", "post"),
            {"body": {"quote_id": "$response.body#/id"}},
        ),
    },
}
