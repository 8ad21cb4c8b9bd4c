"""What Litestar's own errors and every other exception answer: RFC 9457 problems.

The hot routes (`gateway.http.hot_routes`) answer the same documents for the same errors
without Litestar; these handlers are the app's, for every other route.
"""

from __future__ import annotations

import re
from typing import Any, Final

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from gateway.http.problems import FieldError, ProblemError, from_domain_error
from gateway.http.requests import problem_reply, unexpected_reply
from ledger.errors import DomainError

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


def _on_problem(request: Request[Any, Any, Any], error: ProblemError) -> Response[bytes]:
    return problem_reply(error, request.scope).response()


def _on_domain_error(request: Request[Any, Any, Any], error: DomainError) -> Response[bytes]:
    return _on_problem(request, from_domain_error(error))


def _on_http_exception(request: Request[Any, Any, Any], error: HTTPException) -> Response[bytes]:
    status = error.status_code
    code = _http_codes.get(status, "internal_error" if status >= 500 else "bad_request")
    # Litestar's own headers are part of the answer: a 405's `Allow` (RFC 9110 §15.5.6).
    headers = {str(name): str(value) for name, value in (error.headers or {}).items()}
    return _on_problem(request, ProblemError(status, code, str(error.detail), headers=headers))


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
    return _on_problem(request, problem)


def _on_unexpected(request: Request[Any, Any, Any], error: Exception) -> Response[bytes]:
    return unexpected_reply(error, request.scope).response()


exception_handlers: Final[ExceptionHandlersMap] = {
    ProblemError: _on_problem,
    DomainError: _on_domain_error,
    ValidationException: _on_invalid_parameters,
    HTTPException: _on_http_exception,
    Exception: _on_unexpected,
}
