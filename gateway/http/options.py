"""`OPTIONS` on every path, answered with all of the path's methods in `Allow` (RFC 9110
§9.3.7).

Litestar makes an `OPTIONS` handler for a path from the handlers it has when it first sees
the path, and keeps it when later handlers of the same path join: `OPTIONS /v1/transfers`
would name `POST` alone though `GET` is served too. Declaring one `OPTIONS` handler per
path, ahead of the others, with the methods of every handler of that path, keeps the answer
whole; Litestar then makes none of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from litestar import HttpMethod, Response, route
from litestar.handlers import HTTPRouteHandler

from gateway.http.roles import options_method


def options_handlers(handlers: Iterable[HTTPRouteHandler]) -> list[HTTPRouteHandler]:
    """One `OPTIONS` handler per path of `handlers`, naming every method the path serves."""
    methods_by_path: dict[str, set[str]] = {}
    for handler in handlers:
        for path in handler.paths:
            methods = methods_by_path.setdefault(path, {options_method})
            methods.update(handler.http_methods)
    return [_options_handler(path, methods) for path, methods in methods_by_path.items()]


def _options_handler(path: str, methods: set[str]) -> HTTPRouteHandler:
    allow = ", ".join(sorted(methods))

    @route(path, http_method=[HttpMethod.OPTIONS], include_in_schema=False, sync_to_thread=False)
    def answer_options() -> Response[Any]:
        return Response(content=None, status_code=204, headers={"Allow": allow})

    return answer_options
