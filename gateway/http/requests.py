"""Request plumbing shared by the handlers: the caller, the body read once and decoded
strictly, and the replies (JSON, problems) the app and the hot routes send alike.

Bodies are decoded strictly by msgspec (no coercion of "5" into 5, no unknown fields), and
a failure names the field. `Idempotency-Key` is `gateway.http.idempotency`'s.
"""

from __future__ import annotations

import decimal
import math
import re
from typing import Any, TypeVar

import msgspec
import structlog
from litestar import Request, Response
from litestar.types import Receive, Scope

from gateway.http.problems import (
    ProblemError,
    encode,
    invalid,
    problem,
    problem_content_type,
)
from gateway.http.ratelimit import Principal
from gateway.infra import outages
from gateway.infra.observability import problems_total

BodyT = TypeVar("BodyT")
json_content_type = "application/json"
_body_state_key = "kovra.body"
_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}
_encoder = msgspec.json.Encoder()
_path_pattern = re.compile(r"at `\$\.?([^`]*)`")
_field_pattern = re.compile(r"field `([^`]+)`")
# Postgres text cannot hold U+0000, so no field of any body accepts it: a JSON string escape
# of it (`\u0000` after an even number of backslashes, which escape one another) is refused
# before decoding, where every body passes, rather than failing at the first INSERT.
_escaped_nul = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
log = structlog.get_logger("kovra.requests")
# An outage of Postgres or Redis is not a bug to page about but something the caller should
# wait out: 503 with Retry-After, and a retry with the same Idempotency-Key finds whatever
# the first attempt left (the reconciler finishes it).
outage_retry_after_seconds = 1


def principal_of(request: Request[Any, Any, Any]) -> Principal:
    principal: Principal = request.scope["state"]["principal"]
    return principal


def admin_actor_of(request: Request[Any, Any, Any]) -> str:
    """Who is acting on the admin plane, as the audit trail records them."""
    actor: str = request.scope["state"]["admin_actor"]
    return actor


def scope_header(scope: Scope, name: bytes) -> str | None:
    """The first value of header `name` (lower case), read from the raw ASGI headers."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def request_body(request: Request[Any, Any, Any]) -> bytes:
    """The whole body, read once and kept for later readers, within the route's limit (else
    the app's), in bytes."""
    size_max = request.route_handler.resolve_request_max_body_size() or math.inf
    return await read_body(request.scope, request.receive, size_max=size_max)


async def read_body(scope: Scope, receive: Receive, *, size_max: float) -> bytes:
    """The whole body, read once from the ASGI messages and kept in the scope's state.

    Litestar's `Request.body()` builds the request's header multidict and an async generator
    to read one message, a measurable share of a transfer's CPU. This reads the messages
    directly; `size_max` holds for the announced length and for the bytes received."""
    state: dict[str, Any] = scope["state"]
    cached: bytes | None = state.get(_body_state_key)
    if cached is not None:
        return cached
    announced = scope_header(scope, b"content-length")
    if (
        announced is not None
        and announced.isascii()  # str.isdigit() also takes "²", which int() refuses.
        and announced.isdigit()
        and int(announced) > size_max
    ):
        raise _too_large(size_max)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # The client left mid-body.
            raise ProblemError(400, "client_disconnected", "the client left mid-body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > size_max:
            raise _too_large(size_max)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    state[_body_state_key] = body
    return body


def _too_large(size_max: float) -> ProblemError:
    return ProblemError(
        413, "payload_too_large", f"the request body is larger than {int(size_max)} bytes"
    )


def decode_body(raw: bytes, body_type: type[BodyT]) -> BodyT:
    """The body as `body_type`, or a problem naming what is wrong and where."""
    if b"\\u0000" in raw and _escaped_nul.search(raw):
        raise invalid(
            "body",
            detail="the request body is invalid: a string holds U+0000 (NUL), which no field"
            " accepts",
            message="a string holds U+0000 (NUL)",
        )
    decoder = _decoders.get(body_type)
    if decoder is None:
        decoder = _decoders[body_type] = msgspec.json.Decoder(body_type)
    try:
        return decode_json(decoder, raw or b"{}", body_type)
    except msgspec.ValidationError as error:
        message = str(error)
        field = _field_pattern.search(message) or _path_pattern.search(message)
        name = field.group(1) if field and field.group(1) else "body"
        raise invalid(
            name,
            detail=f"the request body is invalid: {message}",
            message=message.split(" - ", maxsplit=1)[0],
        ) from None
    except msgspec.DecodeError as error:
        raise ProblemError(400, "malformed_json", f"the body is not valid JSON: {error}") from None


# msgspec refuses `1.0` where an integer is due; JSON Schema counts it as the integer 1
# (a number whose fractional part is zero), so the OpenAPI document promises it is taken.
_float_for_integer = re.compile(r"Expected `(?:[^`]* \| )?int(?: \|[^`]*)?`, got `float`")
# An exponent past this is no amount any field takes: left a float, so it is refused rather
# than expanded into an integer of a billion digits.
_integral_exponent_max = 40
_exact_decoder = msgspec.json.Decoder(float_hook=decimal.Decimal)


def decode_json(decoder: msgspec.json.Decoder[Any], raw: bytes, body_type: type[BodyT]) -> BodyT:
    """`raw` decoded strictly by `decoder` (for `body_type`), except that a number whose
    fractional part is zero is taken where an integer is due; the number is read exactly (as
    a decimal, never through a float), so `2.0000000000000001` stays refused."""
    try:
        return decoder.decode(raw)  # type: ignore[no-any-return]
    except msgspec.ValidationError as error:
        if _float_for_integer.match(str(error)) is None:
            raise
    exact = _exact_decoder.decode(raw)
    return msgspec.convert(_integers_where_integral(exact), body_type)


def _integers_where_integral(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        if value.adjusted() <= _integral_exponent_max and value == value.to_integral_value():
            return int(value)
        return float(value)
    if isinstance(value, dict):
        return {key: _integers_where_integral(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integers_where_integral(item) for item in value]
    return value


def json_response(
    status: int, payload: msgspec.Struct, headers: dict[str, str] | None = None
) -> Response[bytes]:
    return Response(
        content=_encoder.encode(payload),
        status_code=status,
        media_type=json_content_type,
        headers=headers,
    )


class Reply(msgspec.Struct, frozen=True, kw_only=True):
    """An answer to a request, independent of the framework that sends it: a Litestar
    `Response` (`response`) or ASGI messages (`gateway.http.hot_routes`)."""

    status_code: int
    body: bytes
    content_type: str
    headers: dict[str, str] | None = None

    def response(self) -> Response[bytes]:
        return Response(
            content=self.body,
            status_code=self.status_code,
            media_type=self.content_type,
            headers=self.headers,
        )


def unexpected_reply(error: Exception, scope: Scope) -> Reply:
    """The problem reply for an error no handler answered (`unexpected_problem`)."""
    return problem_reply(unexpected_problem(error, path=scope["path"]), scope)


def unexpected_problem(error: Exception, *, path: str) -> ProblemError:
    """503 for an outage of Postgres or Redis (`gateway.infra.outages`), logged as a warning;
    otherwise 500, logged with its traceback (call it from the `except` block that caught
    `error`)."""
    if isinstance(error, outages.unavailable):
        log.warning("dependency_unavailable", path=path, error=repr(error))
        return ProblemError(
            503,
            "dependency_unavailable",
            "a service Kovra depends on is unavailable; retry shortly with the same"
            " Idempotency-Key",
            headers={"Retry-After": str(outage_retry_after_seconds)},
        )
    log.exception("unhandled_error", path=path, error=repr(error))
    return ProblemError(500, "internal_error", "an internal error")


def problem_reply(error: ProblemError, scope: Scope) -> Reply:
    """The problem document for `error`, counted in `kovra_problems_total`."""
    problems_total.labels(code=error.code).inc()
    request_id = str(scope.get("state", {}).get("request_id", ""))
    body = encode(
        problem(error.status, error.code, error.detail, errors=error.errors, request_id=request_id)
    )
    return Reply(
        status_code=error.status,
        body=body,
        content_type=problem_content_type,
        headers=error.headers or None,
    )
