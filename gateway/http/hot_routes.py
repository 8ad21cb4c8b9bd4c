"""The payment path's routes served straight from ASGI, beside Litestar.

`POST /v1/quotes`, `/v1/transfers` and `/v1/holds` carry most of a payment API's traffic.
Through Litestar each one paid for routing, handler resolution, the request and response
objects and the exception middleware: in-process, about a quarter of a transfer's CPU
(520 to 380 µs in one experiment). Here one dict lookup on (method, path) finds the route,
and the same reply function its Litestar handler calls runs on the body read under the same
limit, so the two cannot drift; errors become the same problem documents the app's
exception handlers give. Every other request, and these paths in any other spelling (a
trailing slash, a root path), go to Litestar, which still documents all of them in OpenAPI.
The ASGI middleware (`gateway.http.middleware`) runs before both.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Litestar
from litestar.enums import ScopeType
from litestar.handlers import HTTPRouteHandler
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Receive,
    Scope,
    Send,
)

from gateway.http.middleware import route_state_key
from gateway.http.problems import ProblemError, from_domain_error
from gateway.http.ratelimit import Principal
from gateway.http.requests import Reply, problem_reply, read_body, unexpected_reply
from ledger.errors import DomainError
from ledger.invariants import unreachable

# A hot route's reply function: given the process's runtime (`app.state.runtime`, which
# this module does not need to know the shape of), the caller, the scope and the body.
HotRoute = Callable[[Any, Principal, Scope, bytes], Awaitable[Reply]]


def with_hot_routes(
    app: Litestar, litestar_handler: ASGIApp, hot_routes: dict[tuple[str, str], HotRoute]
) -> ASGIApp:
    """`litestar_handler` (the app's own ASGI handler) with `hot_routes`, by (method, path),
    taken first."""
    size_max = {key: _body_size_max(app, method=key[0], path=key[1]) for key in hot_routes}

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope.get("root_path"):
            await litestar_handler(scope, receive, send)
            return
        key = (scope["method"], scope["path"])
        route = hot_routes.get(key)
        if route is None:
            await litestar_handler(scope, receive, send)
            return
        state: dict[str, Any] = scope["state"]
        state[route_state_key] = key[1]
        try:
            body = await read_body(scope, receive, size_max=size_max[key])
            reply = await route(app.state.runtime, state["principal"], scope, body)
        except ProblemError as error:
            reply = problem_reply(error, scope)
        except DomainError as error:
            reply = problem_reply(from_domain_error(error), scope)
        except Exception as error:
            reply = unexpected_reply(error, scope)
        await _send(send, reply)

    return dispatch


def _body_size_max(app: Litestar, *, method: str, path: str) -> float:
    """The limit Litestar would apply to this route: the handler's own, else the app's."""
    handler = app.asgi_router.handle_routing(path=path, method=method)[1]
    if not isinstance(handler, HTTPRouteHandler):
        unreachable(f"{method} {path} is not an HTTP route")
    limit: int | None = handler.resolve_request_max_body_size()
    return limit or math.inf


async def _send(send: Send, reply: Reply) -> None:
    headers = [
        (b"content-type", reply.content_type.encode()),
        (b"content-length", str(len(reply.body)).encode()),
    ]
    headers.extend(
        (name.lower().encode(), value.encode()) for name, value in (reply.headers or {}).items()
    )
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": reply.status_code,
        "headers": headers,
    }
    end: HTTPResponseBodyEvent = {
        "type": "http.response.body",
        "body": reply.body,
        "more_body": False,
    }
    await send(start)
    await send(end)
