"""The ops plane's routes: liveness, readiness of every dependency, Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any, Final

import msgspec
from litestar import Request, Response, get

from gateway.http import wire
from gateway.http.problems import encode, problem, problem_content_type
from gateway.http.requests import json_response
from gateway.infra.observability import metrics_content_type, render_metrics
from gateway.runtime import runtime_of
from ledger.clients import LedgerClient

readiness_timeout_seconds = 2.0


@get("/health", summary="The process is up", tags=["ops"])
async def health() -> Response[bytes]:
    return json_response(200, wire.Health(status="ok"))


@get("/ready", summary="TigerBeetle, Postgres and Redis are reachable", tags=["ops"])
async def ready(request: Request[Any, Any, Any]) -> Response[bytes]:
    runtime = runtime_of(request)
    names = ("tigerbeetle", "postgres", "redis")
    results = await asyncio.gather(
        _check(_ledger(runtime.ledger_client)),
        _check(runtime.pool.fetchval("SELECT 1")),
        _check(runtime.redis.ping()),
        return_exceptions=False,
    )
    checks = dict(zip(names, results, strict=True))
    down = [name for name, result in checks.items() if result != "ok"]
    if down:
        body = encode(problem(503, "not_ready", f"unavailable: {', '.join(down)}"))
        return Response(
            content=body,
            status_code=503,
            media_type=problem_content_type,
            headers={"x-kovra-checks": ",".join(f"{k}={v}" for k, v in checks.items())},
        )
    return json_response(200, wire.Readiness(status="ready", checks=checks))


async def _ledger(client: LedgerClient) -> None:
    await client.lookup_accounts([1])


async def _check(awaitable: Any) -> str:
    try:
        async with asyncio.timeout(readiness_timeout_seconds):
            await awaitable
    except Exception as error:  # Any failure means "not ready"; the name says which.
        return f"down: {type(error).__name__}"
    return "ok"


@get(
    "/metrics",
    summary="Prometheus metrics of every worker",
    tags=["ops"],
    media_type=metrics_content_type,
)
async def metrics() -> Response[bytes]:
    body, content_type = render_metrics()
    return Response(content=body, status_code=200, media_type=content_type)


route_handlers: Final = (health, ready, metrics)
request_bodies: Final[dict[tuple[str, str], type[msgspec.Struct]]] = {}
response_bodies: Final[dict[tuple[str, str], tuple[str, type[msgspec.Struct]]]] = {
    ("/health", "get"): ("200", wire.Health),
    ("/ready", "get"): ("200", wire.Readiness),
}
