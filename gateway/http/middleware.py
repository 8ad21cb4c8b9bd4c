"""The ASGI layer every request crosses: request id, authentication, rate limit, the role's
check, metrics.

It wraps the app's whole ASGI handler (`gateway.app`), before routing and before the hot
routes (`gateway.http.hot_routes`), so a request without valid credentials, or over its tenant's
rate limit, costs one Redis round trip and never reaches a handler; nor does a request whose
key's role may not call its route (`gateway.http.roles`).
"""

from __future__ import annotations

import random
import re
import time
from typing import Any

import structlog
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Message,
    Receive,
    Scope,
    Send,
)
from litestar.utils.path import normalize_path

from gateway.http.auth import Authenticator
from gateway.http.problems import ProblemError, encode, problem, problem_content_type
from gateway.http.ratelimit import rate_limit_headers
from gateway.http.requests import scope_header, unexpected_problem
from gateway.http.roles import ensure_role_may_call
from gateway.infra.observability import observe_request, problems_total, rate_limited_total

request_id_length_max = 128
tenant_prefix = "/v1/"
admin_prefix = "/admin/v1/"
# The one `/v1` route without tenant credentials: a mandate provider's notifications in
# (`gateway.collections.routes`), whose signature is verified by its handler before anything
# is stored. Exactly that path and method, nothing under or beside it.
provider_webhook_path = re.compile(r"^/v1/providers/[A-Za-z0-9_]{1,32}/webhooks$")
# A hot route (`gateway.http.hot_routes`) puts its path here, for the metrics and the log line.
route_state_key = "kovra.route"
log = structlog.get_logger("kovra.http")


def _request_id(scope: Scope) -> str:
    given = scope_header(scope, b"x-request-id")
    if given and len(given) <= request_id_length_max and given.isprintable():
        return given
    # A request id names a log line; it guards nothing, so it comes from the process's
    # pseudo-random generator (reseeded in every forked worker), not from a system call
    # per request as `uuid4` would.
    return f"{random.getrandbits(128):032x}"


async def send_problem(
    send: Send, error: ProblemError, request_id: str, extra_headers: dict[str, str]
) -> None:
    problems_total.labels(code=error.code).inc()
    body = encode(
        problem(error.status, error.code, error.detail, errors=error.errors, request_id=request_id)
    )
    headers = {
        **extra_headers,
        **error.headers,
        "content-type": problem_content_type,
        "content-length": str(len(body)),
        "x-request-id": request_id,
    }
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": error.status,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(start)
    await send(end)


def kovra_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        method: str = scope["method"]
        started = time.perf_counter()
        request_id = _request_id(scope)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        status_holder: list[int] = [500]
        extra_headers: dict[str, str] = {"x-request-id": request_id}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                headers = list(message.get("headers", []))
                headers.extend((k.lower().encode(), v.encode()) for k, v in extra_headers.items())
                message = {**message, "headers": headers}
            await send(message)

        try:
            await _guard(scope, method, extra_headers)
        except ProblemError as error:
            status_holder[0] = error.status
            await send_problem(send, error, request_id, extra_headers)
        except Exception as error:
            # What Litestar's handler for unexpected errors answers (e.g. Redis gone: 503).
            unexpected = unexpected_problem(error, path=scope["path"])
            status_holder[0] = unexpected.status
            await send_problem(send, unexpected, request_id, extra_headers)
        else:
            await app(scope, receive, send_with_headers)
        finally:
            route = _route_template(scope, method)
            elapsed = time.perf_counter() - started
            observe_request(method=method, route=route, status=status_holder[0], seconds=elapsed)
            log.info(
                "request",
                method=method,
                route=route,
                status=status_holder[0],
                duration_ms=round(elapsed * 1000, 2),
            )

    return middleware


async def _guard(scope: Scope, method: str, extra_headers: dict[str, str]) -> None:
    """Authenticate, rate limit and check the role (`gateway.http.roles`) by path; put the
    principal in the request state."""
    path: str = scope["path"]
    authenticator: Authenticator = scope["litestar_app"].state.runtime.authenticator
    state: dict[str, Any] = scope.setdefault("state", {})
    if method == "POST" and provider_webhook_path.match(path) is not None:
        return
    if path.startswith(tenant_prefix):
        principal, decision = await authenticator.authenticate_tenant_request(
            scope_header(scope, b"authorization")
        )
        structlog.contextvars.bind_contextvars(tenant_id=principal.tenant_id)
        extra_headers.update(rate_limit_headers(decision))
        if not decision.allowed:
            rate_limited_total.inc()
            raise ProblemError(
                429,
                "rate_limited",
                f"over {decision.limit} requests per minute; retry in "
                f"{decision.retry_after_seconds} s",
            )
        route = _routed_template(scope, method)
        if route is not None:
            ensure_role_may_call(principal.role, method=method, route=route)
        state["principal"] = principal
    elif path.startswith(admin_prefix):
        state["admin_actor"] = authenticator.authenticate_admin(
            scope_header(scope, b"authorization")
        )


def _routed_template(scope: Scope, method: str) -> str | None:
    """The path template Litestar routes this request to (a hot route's too, since each is
    also one of Litestar's routes); None when no route takes it, which Litestar then answers
    with 404 or 405. Litestar caches the lookup, so its own routing after this one is free."""
    try:
        routed = scope["litestar_app"].asgi_router.handle_routing(
            path=normalize_path(scope["path"]), method=method
        )
    except HTTPException:
        return None
    template: str = routed[4]
    return template


def _route_template(scope: Scope, method: str) -> str:
    """The route's path template for metrics and logs. A request refused before routing
    (by `_guard`) is looked up in the router, so a 401 or 429 is named like a 201."""
    hot_route: str | None = scope["state"].get(route_state_key)
    if hot_route is not None:
        return hot_route
    handler: Any = scope.get("route_handler")
    if handler is None:
        try:
            handler = scope["litestar_app"].asgi_router.handle_routing(
                path=normalize_path(scope["path"]), method=method
            )[1]
        except HTTPException:  # No such route, or not with this method.
            return "unmatched"
    paths = getattr(handler, "paths", None)
    if paths:
        return str(sorted(paths)[0])
    return "unmatched"
