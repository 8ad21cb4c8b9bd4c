"""Balances and statements: reads served from TigerBeetle alone."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.params import FromQuery

from gateway.http import wire
from gateway.http.ids import encode_id, utc_from_ns
from gateway.http.paging import decode_number_cursor, page_limit_or_422
from gateway.http.requests import json_response, principal_of, services_of
from ledger.statements import StatementEntry, statement_limit_max

statement_limit_default = 100
# The API id of the object behind each kind of wallet entry (the transfer's user_data_128),
# so a statement line joins to the object the tenant knows: a payout's legs and refunds, and a
# batch item's return, to the transfer (`tr_`); a batch's pair legs and their reversal to the
# batch.
_object_prefixes = {
    "deposit": "dep",
    "hold": "hold",
    "liquidity_funding": "fund",
    "payout_source": "tr",
    "payout_fee": "tr",
    "payout_target": "tr",
    "payout_settlement": "tr",
    "refund_source": "tr",
    "refund_fee": "tr",
    "refund_target": "tr",
    "batch_source": "batch",
    "batch_fee": "batch",
    "batch_target": "batch",
    "batch_reversal": "batch",
    "batch_item_source": "tr",
    "batch_item_fee": "tr",
    "batch_item_return": "tr",
    "batch_item_target_return": "tr",
}


@get("/v1/balances", summary="Balances of every wallet", tags=["balances"])
async def list_balances(request: Request[Any, Any, Any]) -> Response[bytes]:
    services = services_of(request)
    balances = await services.statements.balances(principal_of(request).tenant_id)
    return json_response(
        200,
        wire.BalanceList(
            data=[
                wire.Balance(
                    currency=b.currency, available=b.available, pending=b.pending, posted=b.posted
                )
                for b in balances
            ]
        ),
    )


@get("/v1/statements", summary="Ledger history of one wallet", tags=["statements"])
async def read_statement(
    request: Request[Any, Any, Any],
    currency: FromQuery[str],
    limit: FromQuery[int] = statement_limit_default,
    cursor: FromQuery[str | None] = None,
) -> Response[bytes]:
    services = services_of(request)
    page_limit_or_422(limit, limit_max=statement_limit_max)
    after_ns = decode_number_cursor(cursor) or 0
    currency_code = services.ledger.currencies.get(currency).code
    statement = await services.statements.statement(
        tenant_id=principal_of(request).tenant_id,
        currency_code=currency_code,
        limit=limit,
        after_ns=after_ns,
    )
    return json_response(
        200,
        wire.StatementPage(
            data=[_entry(entry, currency_code) for entry in statement.entries],
            next_cursor=None if statement.next_cursor is None else str(statement.next_cursor),
        ),
    )


def _entry(entry: StatementEntry, currency: str) -> wire.StatementEntry:
    prefix = _object_prefixes.get(entry.kind, "obj")
    return wire.StatementEntry(
        id=f"ltr_{entry.transfer_id:032x}",
        object_id=encode_id(prefix, entry.object_id),
        type=entry.kind,
        direction=entry.direction,
        amount=entry.amount,
        currency=currency,
        status=entry.status,
        balance_posted=entry.balance_posted,
        balance_pending=entry.balance_pending,
        created_at=utc_from_ns(entry.timestamp_ns),
    )
