"""The Litestar application: every domain's routes, the Kovra middleware, problem responses,
and the lifespan.

`create_app()` is the factory granian calls in each worker process. The lifespan opens the
process's runtime (ledger client, Postgres pool, Redis, each domain's service) once and
closes it at exit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any, Final

from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig

from compliance.cases import routes as case_routes
from compliance.freezes import routes as freeze_routes
from gateway import ops
from gateway.batches import routes as batch_routes
from gateway.buckets import routes as bucket_routes
from gateway.collections import routes as collection_routes
from gateway.customers import routes as customer_routes
from gateway.forecasts import routes as forecast_routes
from gateway.funding import routes as funding_routes
from gateway.http.exception_handlers import exception_handlers
from gateway.http.hot_routes import HotRoute, with_hot_routes
from gateway.http.middleware import kovra_middleware
from gateway.http.openapi import openapi_document_route
from gateway.http.options import options_handlers
from gateway.infra.garbage_collection import tune_garbage_collection
from gateway.infra.observability import configure_logging
from gateway.jobs.worker import start_workers
from gateway.operations import routes as operations_routes
from gateway.orchestrations import routes as orchestration_routes
from gateway.partners import routes as partner_routes
from gateway.quotes import routes as quote_routes
from gateway.runtime import open_runtime
from gateway.schedules import routes as schedule_routes
from gateway.settings import Settings, load_settings
from gateway.tenancy import routes as tenancy_routes
from gateway.transfers import routes as transfer_routes
from gateway.wallets import routes as wallet_routes
from gateway.webhooks import routes as webhook_routes

kovra_version = "0.1.0"
# Each module declares `route_handlers`, `request_bodies` and `response_bodies`, and those
# with query parameters their handlers check themselves `parameter_schemas`, and those that
# read a body in another media type than JSON `request_media`; those with request bodies an
# example of each, `request_examples`; those whose answers lead to other operations
# `response_links`.
route_modules: Final[Sequence[ModuleType]] = (
    ops,
    wallet_routes,
    tenancy_routes,
    quote_routes,
    transfer_routes,
    batch_routes,
    case_routes,
    webhook_routes,
    freeze_routes,
    funding_routes,
    operations_routes,
    collection_routes,
    customer_routes,
    orchestration_routes,
    forecast_routes,
    schedule_routes,
    partner_routes,
    bucket_routes,
)
# The payment path's POSTs, served straight from ASGI (`gateway.http.hot_routes`).
hot_routes: Final[dict[tuple[str, str], HotRoute]] = {
    ("POST", "/v1/quotes"): quote_routes.create_quote_reply,
    ("POST", "/v1/transfers"): transfer_routes.create_transfer_reply,
    ("POST", "/v1/holds"): wallet_routes.create_hold_reply,
}


def _route_handlers(settings: Settings) -> list[HTTPRouteHandler]:
    request_bodies: dict[tuple[str, str], Any] = {}
    response_bodies: dict[tuple[str, str], Any] = {}
    parameter_schemas: dict[tuple[str, str], Any] = {}
    request_media: dict[tuple[str, str], Any] = {}
    request_examples: dict[tuple[str, str], Any] = {}
    response_links: dict[tuple[str, str], Any] = {}
    handlers: list[HTTPRouteHandler] = []
    for module in route_modules:
        request_bodies.update(module.request_bodies)
        response_bodies.update(module.response_bodies)
        parameter_schemas.update(getattr(module, "parameter_schemas", {}))
        request_media.update(getattr(module, "request_media", {}))
        request_examples.update(getattr(module, "request_examples", {}))
        response_links.update(getattr(module, "response_links", {}))
        handlers.extend(module.route_handlers)
    document = openapi_document_route(
        request_bodies=request_bodies,
        response_bodies=response_bodies,
        parameter_schemas=parameter_schemas,
        request_media=request_media,
        request_examples=request_examples,
        response_links=response_links,
        currencies=settings.currencies,
    )
    return [*options_handlers(handlers), *handlers, document]


def create_app(settings: Settings | None = None) -> Litestar:
    """The gateway app; settings come from the environment unless given (tests)."""
    chosen = settings or load_settings()
    configure_logging(chosen.log_level)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        runtime = await open_runtime(chosen)
        app.state.runtime = runtime
        tune_garbage_collection()  # Start-up is done: what is alive now lives for good.
        workers: list[asyncio.Task[None]] = []
        if chosen.in_process_worker:
            # `kovra dev`: the embedded ledger lives in this process, so the worker does too.
            workers = start_workers(runtime)
        try:
            yield
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            await runtime.close()

    app = Litestar(
        route_handlers=_route_handlers(chosen),
        lifespan=[lifespan],
        exception_handlers=exception_handlers,
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
    app.asgi_handler = kovra_middleware(with_hot_routes(app, app.asgi_handler, hot_routes))
    return app
