"""FX quotes: priced on a fresh mid rate with the tenant's margin and fee, locked for their
lifetime (`KOVRA_QUOTE_TTL_SECONDS`, 10 minutes by default) and usable once."""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath
from litestar.types import Scope

from fx.quotes import LockedQuote
from gateway.http import wire
from gateway.http.ids import decode_id, encode_id
from gateway.http.problems import FieldError, ProblemError, from_ledger_error
from gateway.http.ratelimit import Principal
from gateway.http.requests import (
    Reply,
    decode_body,
    idempotent_reply,
    json_response,
    principal_of,
    request_body,
    services_of,
)
from gateway.runtime import Services
from ledger.errors import LedgerError


def quote_view(
    quote: LockedQuote, status: Literal["active", "used", "expired"] = "active"
) -> wire.Quote:
    return wire.Quote(
        id=encode_id("quote", quote.id),
        source_currency=quote.source_currency,
        target_currency=quote.target_currency,
        source_amount=quote.source_amount,
        target_amount=quote.target_amount,
        rate=quote.rate,
        mid_rate=quote.mid_rate,
        margin_bps=quote.margin_bps,
        fee=wire.Money(amount=quote.fee_amount, currency=quote.source_currency),
        status=status,
        rate_observed_at=quote.rate_observed_at,
        created_at=quote.created_at,
        expires_at=quote.expires_at,
    )


@post("/v1/quotes", summary="Quote a conversion and lock its rate", tags=["quotes"])
async def create_quote(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Served by `gateway.http.hot_routes` in the running gateway; here for the OpenAPI document
    and for an app called without that dispatch."""
    reply = await create_quote_reply(
        services_of(request), principal_of(request), request.scope, await request_body(request)
    )
    return reply.response()


async def create_quote_reply(
    services: Services, principal: Principal, scope: Scope, raw: bytes
) -> Reply:
    body = decode_body(raw, wire.QuoteCreate)
    if (body.source_amount is None) == (body.target_amount is None):
        raise ProblemError(
            422,
            "validation_error",
            "give exactly one amount",
            errors=[
                FieldError(
                    field="source_amount", message="exactly one of source_amount and target_amount"
                )
            ],
        )
    currency_fields = (
        ("source_currency", body.source_currency),
        ("target_currency", body.target_currency),
    )
    for field, code in currency_fields:
        try:
            services.ledger.currencies.get(code)
        except LedgerError as error:
            # Two fields hold a currency: the problem names the one at fault.
            raise from_ledger_error(error, field=field) from None

    async def execute(quote_id: int) -> tuple[int, msgspec.Struct]:
        pricing = await services.pricing.pricing(principal.tenant_id)
        quote = await services.quoter.quote(
            tenant_id=principal.tenant_id,
            quote_id=quote_id,
            pricing=pricing,
            source_currency=body.source_currency,
            target_currency=body.target_currency,
            source_amount=body.source_amount,
            target_amount=body.target_amount,
        )
        return 201, quote_view(quote)

    return await idempotent_reply(
        services, principal, scope, method="POST", body=raw, kind="quote", execute=execute
    )


@get(
    "/v1/quotes/{quote_id:str}", summary="A quote and whether it can still be used", tags=["quotes"]
)
async def read_quote(request: Request[Any, Any, Any], quote_id: FromPath[str]) -> Response[bytes]:
    services = services_of(request)
    state = await services.quoter.store.read(
        tenant_id=principal_of(request).tenant_id, quote_id=decode_id("quote", quote_id)
    )
    if state is None:
        raise ProblemError(404, "not_found", f"no quote {quote_id[:64]}")
    return json_response(200, quote_view(state.quote, state.status))
