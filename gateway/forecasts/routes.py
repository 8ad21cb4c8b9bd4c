"""The income forecast for tenants: `GET /v1/customers/{customer_id}/income-forecast`."""

from __future__ import annotations

from typing import Any, Final

import msgspec
from litestar import Request, Response, get
from litestar.params import FromPath, FromQuery

from gateway.forecasts import wire
from gateway.forecasts.service import customer_prefix
from gateway.http.ids import decode_id
from gateway.http.openapi import ParameterSchemas
from gateway.http.requests import json_response, principal_of
from gateway.http.wire import currency_parameter_or_422, enabled_currency_schema
from gateway.runtime import runtime_of

forecast_path = "/v1/customers/{customer_id}/income-forecast"


@get(
    "/v1/customers/{customer_id:str}/income-forecast",
    summary="A customer's next expected income (a suggestion; it moves nothing)",
    tags=["customers"],
)
async def income_forecast(
    request: Request[Any, Any, Any], customer_id: FromPath[str], currency: FromQuery[str]
) -> Response[bytes]:
    runtime = runtime_of(request)
    runtime.ledger.currencies.get(currency_parameter_or_422(currency))  # Enabled, or a 422.
    expected = await runtime.forecasts.income(
        principal_of(request),
        customer_id=decode_id(customer_prefix, customer_id),
        currency=currency,
    )
    return json_response(200, expected)


route_handlers: Final = (income_forecast,)
request_bodies: Final[dict[tuple[str, str], type[msgspec.Struct]]] = {}
response_bodies: Final[dict[tuple[str, str], tuple[str, type[msgspec.Struct]]]] = {
    (forecast_path, "get"): ("200", wire.IncomeForecast),
}
parameter_schemas: Final[ParameterSchemas] = {
    (forecast_path, "currency"): enabled_currency_schema,
}
