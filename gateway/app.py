"""The Litestar application: routes, the Kovra middleware, problem responses, lifespan.

`create_app()` is the factory granian calls in each worker process. The lifespan opens the
process's connections (ledger client, Postgres pool, Redis) once and closes them at exit.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, get
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig

from compliance.cases import routes as compliance
from gateway.batches import routes as batches
from gateway.batches import wire as batch_wire
from gateway.http import ops, wire
from gateway.http.hot_routes import with_hot_routes
from gateway.http.middleware import kovra_middleware
from gateway.http.problems import FieldError, Problem, ProblemError, from_ledger_error
from gateway.http.requests import problem_reply, unexpected_reply
from gateway.infra.garbage_collection import tune_garbage_collection
from gateway.infra.observability import configure_logging
from gateway.jobs.worker import start_workers
from gateway.quotes import routes as quotes
from gateway.runtime import open_services
from gateway.settings import Settings, load_settings
from gateway.tenancy import routes as admin
from gateway.transfers import routes as transfers
from gateway.wallets import balance_routes as ledger_reads
from gateway.wallets import routes as holds
from gateway.webhooks import event_routes
from gateway.webhooks import routes as webhook_routes
from gateway.webhooks import wire as webhook_wire
from ledger.errors import LedgerError

kovra_version = "0.1.0"
_http_codes = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "dependency_unavailable",
}
# Request bodies are decoded by the handlers (strictly); this tells the OpenAPI document.
request_bodies: dict[tuple[str, str], type[msgspec.Struct]] = {
    ("/v1/deposits", "post"): wire.DepositCreate,
    ("/v1/holds", "post"): wire.HoldCreate,
    ("/v1/holds/{hold_id}/capture", "post"): wire.HoldCapture,
    ("/v1/holds/{hold_id}/void", "post"): wire.HoldVoid,
    ("/admin/v1/tenants", "post"): wire.TenantCreate,
    ("/admin/v1/tenants/{tenant_id}/api-keys", "post"): wire.ApiKeyCreate,
    ("/admin/v1/tenants/{tenant_id}/policies", "put"): wire.PoliciesUpdate,
    ("/admin/v1/tenants/{tenant_id}/status", "put"): wire.TenantStatusUpdate,
    ("/admin/v1/liquidity", "post"): wire.LiquidityFund,
    ("/admin/v1/limit-policies", "post"): wire.LimitPolicyCreate,
    ("/admin/v1/pricing-policies", "post"): wire.PricingPolicyCreate,
    ("/admin/v1/fx-rates", "put"): wire.FxRatesUpdate,
    ("/v1/quotes", "post"): wire.QuoteCreate,
    ("/v1/recipients", "post"): wire.RecipientCreate,
    ("/v1/transfers", "post"): wire.TransferCreate,
    ("/v1/transfers/{transfer_id}/cancel", "post"): wire.TransferCancel,
    ("/v1/batches", "post"): batch_wire.BatchCreate,
    ("/v1/compliance/cases/{case_id}/decision", "post"): compliance.CaseDecision,
    ("/v1/webhook-endpoints", "post"): webhook_wire.EndpointCreate,
    ("/v1/webhook-endpoints/{endpoint_id}/rotate-secret", "post"): webhook_wire.SecretRotate,
    ("/v1/events/{event_id}/redeliver", "post"): webhook_wire.Redeliver,
    (
        "/admin/v1/tenants/{tenant_id}/recipients/{recipient_id}/status",
        "put",
    ): wire.TenantStatusUpdate,
}


# Response bodies by operation, for the OpenAPI document (handlers return encoded bytes).
response_bodies: dict[tuple[str, str], tuple[str, type[msgspec.Struct]]] = {
    ("/health", "get"): ("200", wire.Health),
    ("/ready", "get"): ("200", wire.Readiness),
    ("/v1/balances", "get"): ("200", wire.BalanceList),
    ("/v1/statements", "get"): ("200", wire.StatementPage),
    ("/v1/deposits", "post"): ("201", wire.Deposit),
    ("/v1/holds", "post"): ("201", wire.Hold),
    ("/v1/holds/{hold_id}", "get"): ("200", wire.Hold),
    ("/v1/holds/{hold_id}/capture", "post"): ("200", wire.Hold),
    ("/v1/holds/{hold_id}/void", "post"): ("200", wire.Hold),
    ("/admin/v1/tenants", "post"): ("201", wire.TenantCreated),
    ("/admin/v1/tenants", "get"): ("200", wire.TenantPage),
    ("/admin/v1/tenants/{tenant_id}", "get"): ("200", wire.Tenant),
    ("/admin/v1/tenants/{tenant_id}/api-keys", "get"): ("200", wire.ApiKeyPage),
    ("/admin/v1/tenants/{tenant_id}/policies", "put"): ("200", wire.Tenant),
    ("/admin/v1/tenants/{tenant_id}/status", "put"): ("200", wire.Tenant),
    ("/admin/v1/tenants/{tenant_id}/api-keys", "post"): ("201", wire.ApiKey),
    ("/admin/v1/tenants/{tenant_id}/api-keys/{key_id}", "delete"): ("200", wire.ApiKey),
    ("/admin/v1/liquidity", "post"): ("201", wire.Funding),
    ("/admin/v1/limit-policies", "post"): ("201", wire.Policy),
    ("/admin/v1/pricing-policies", "post"): ("201", wire.Policy),
    ("/v1/quotes", "post"): ("201", wire.Quote),
    ("/v1/quotes/{quote_id}", "get"): ("200", wire.Quote),
    ("/v1/recipients", "post"): ("201", wire.Recipient),
    ("/v1/recipients/{recipient_id}", "get"): ("200", wire.Recipient),
    ("/v1/transfers", "post"): ("201", wire.Transfer),
    ("/v1/transfers", "get"): ("200", wire.TransferPage),
    ("/v1/transfers/{transfer_id}", "get"): ("200", wire.Transfer),
    ("/v1/transfers/{transfer_id}/cancel", "post"): ("200", wire.Transfer),
    ("/v1/transfers/{transfer_id}/messages", "get"): ("200", wire.TransferMessageList),
    ("/v1/batches", "post"): ("201", batch_wire.Batch),
    ("/v1/batches/{batch_id}", "get"): ("200", batch_wire.Batch),
    ("/v1/batches/{batch_id}/messages", "get"): ("200", batch_wire.BatchMessageList),
    ("/v1/compliance/cases", "get"): ("200", compliance.CaseList),
    ("/v1/compliance/cases/{case_id}/decision", "post"): ("200", compliance.Case),
    ("/v1/webhook-endpoints", "post"): ("201", webhook_wire.Endpoint),
    ("/v1/webhook-endpoints", "get"): ("200", webhook_wire.EndpointPage),
    ("/v1/webhook-endpoints/{endpoint_id}", "get"): ("200", webhook_wire.Endpoint),
    ("/v1/webhook-endpoints/{endpoint_id}", "delete"): ("200", webhook_wire.Endpoint),
    ("/v1/webhook-endpoints/{endpoint_id}/rotate-secret", "post"): ("200", webhook_wire.Endpoint),
    ("/v1/events", "get"): ("200", webhook_wire.EventPage),
    ("/v1/events/{event_id}", "get"): ("200", webhook_wire.Event),
    ("/v1/events/{event_id}/redeliver", "post"): ("202", webhook_wire.DeliveryList),
}


def _problem_response(request: Request[Any, Any, Any], error: ProblemError) -> Response[bytes]:
    return problem_reply(error, request.scope).response()


def _on_problem(request: Request[Any, Any, Any], error: ProblemError) -> Response[bytes]:
    return _problem_response(request, error)


def _on_ledger_error(request: Request[Any, Any, Any], error: LedgerError) -> Response[bytes]:
    return _problem_response(request, from_ledger_error(error))


def _on_http_exception(request: Request[Any, Any, Any], error: HTTPException) -> Response[bytes]:
    status = error.status_code
    code = _http_codes.get(status, "internal_error" if status >= 500 else "bad_request")
    return _problem_response(request, ProblemError(status, code, str(error.detail)))


# Litestar names a missing parameter only in its message; a bad value also in `extra`.
_missing_parameter = re.compile(r"Missing required (?:[a-z]+ )?parameter '([^']{1,64})'")


def _on_invalid_parameters(
    request: Request[Any, Any, Any], error: ValidationException
) -> Response[bytes]:
    """Path, query and header parameters Litestar refused: a validation problem naming each
    parameter, as for a bad body (422), not a bare 400."""
    extra = error.extra if isinstance(error.extra, list) else []
    errors = [
        FieldError(field=str(item["key"]), message=str(item.get("message", "invalid")))
        for item in extra
        if isinstance(item, dict) and "key" in item
    ]
    missing = _missing_parameter.search(str(error.detail))
    if not errors and missing is not None:
        errors = [FieldError(field=missing.group(1), message="is required")]
    named = "; ".join(f"{e.field}: {e.message}" for e in errors) or str(error.detail)
    problem = ProblemError(
        422, "validation_error", f"the request's parameters are invalid: {named}", errors=errors
    )
    return _problem_response(request, problem)


def _on_unexpected(request: Request[Any, Any, Any], error: Exception) -> Response[bytes]:
    return unexpected_reply(error, request.scope).response()


@get("/schema/openapi.json", summary="OpenAPI document", tags=["ops"], include_in_schema=False)
async def openapi_document(request: Request[Any, Any, Any]) -> Response[bytes]:
    document = request.app.openapi_schema.to_schema()
    types = list(
        dict.fromkeys(
            [*request_bodies.values(), *(t for _, t in response_bodies.values()), Problem]
        )
    )
    schemas, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    document.setdefault("components", {}).setdefault("schemas", {}).update(components)
    paths = document.get("paths", {})
    for (path, method), body_type in request_bodies.items():
        operation = paths.get(path, {}).get(method)
        if operation is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": schemas[types.index(body_type)]}},
            }
    problem_schema = {"application/problem+json": {"schema": schemas[types.index(Problem)]}}
    for (path, method), (status, body_type) in response_bodies.items():
        operation = paths.get(path, {}).get(method)
        if operation is not None:
            operation["responses"] = {
                status: {
                    "description": body_type.__name__,
                    "content": {"application/json": {"schema": schemas[types.index(body_type)]}},
                },
                "default": {"description": "RFC 9457 problem", "content": problem_schema},
            }
    return Response(content=msgspec.json.encode(document), media_type="application/json")


def create_app(settings: Settings | None = None) -> Litestar:
    """The gateway app; settings come from the environment unless given (tests)."""
    chosen = settings or load_settings()
    configure_logging(chosen.log_level)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        services = await open_services(chosen)
        app.state.services = services
        tune_garbage_collection()  # Start-up is done: what is alive now lives for good.
        workers: list[asyncio.Task[None]] = []
        if chosen.in_process_worker:
            # `kovra dev`: the embedded ledger lives in this process, so the worker does too.
            workers = start_workers(services)
        try:
            yield
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            await services.close()

    app = Litestar(
        route_handlers=[
            ops.health,
            ops.ready,
            ops.metrics,
            openapi_document,
            ledger_reads.list_balances,
            ledger_reads.read_statement,
            holds.create_deposit,
            holds.create_hold,
            holds.read_hold,
            holds.capture_hold,
            holds.void_hold,
            admin.create_tenant,
            admin.list_tenants_route,
            admin.read_tenant,
            admin.list_keys,
            admin.update_policies,
            admin.update_status,
            admin.create_key,
            admin.revoke_key,
            admin.fund_liquidity,
            admin.create_limit,
            admin.create_pricing,
            admin.update_fx_rates,
            quotes.create_quote,
            quotes.read_quote,
            transfers.create_recipient_route,
            transfers.read_recipient,
            transfers.create_transfer_route,
            transfers.read_transfer,
            transfers.list_transfers_route,
            transfers.cancel_transfer_route,
            transfers.transfer_messages,
            batches.create_batch_route,
            batches.read_batch,
            batches.batch_messages,
            compliance.list_cases_route,
            compliance.decide_case,
            webhook_routes.create_endpoint_route,
            webhook_routes.list_endpoints_route,
            webhook_routes.read_endpoint_route,
            webhook_routes.update_endpoint_route,
            webhook_routes.delete_endpoint_route,
            webhook_routes.rotate_secret_route,
            event_routes.list_events_route,
            event_routes.read_event_route,
            event_routes.redeliver_route,
            admin.update_recipient_status,
        ],
        lifespan=[lifespan],
        exception_handlers={
            ProblemError: _on_problem,
            LedgerError: _on_ledger_error,
            ValidationException: _on_invalid_parameters,
            HTTPException: _on_http_exception,
            Exception: _on_unexpected,
        },
        openapi_config=OpenAPIConfig(
            title="Kovra",
            version=kovra_version,
            path="/schema/docs",
            description="Ledger gateway for cross-border B2B payments.",
        ),
        request_max_body_size=chosen.request_body_bytes_max,
        # Logging is configure_logging's (JSON lines); Litestar's default configuration
        # would give the root logger a plain-text handler of its own.
        logging_config=None,
        debug=False,
    )
    # The middleware runs before routing; the payment path's hot routes before Litestar's.
    app.asgi_handler = kovra_middleware(with_hot_routes(app, app.asgi_handler))
    return app
