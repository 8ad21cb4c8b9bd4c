"""Request plumbing shared by the handlers: strict body decoding, the caller, idempotency.

Bodies are decoded strictly by msgspec (no coercion of "5" into 5, no unknown fields), and
a failure names the field. With an `Idempotency-Key`, the first response (success or 4xx
problem) is stored and replayed for the same key and body; another body is a 409.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
import structlog
from litestar import Request, Response
from litestar.types import Receive, Scope

from gateway.http.idempotency import (
    IdempotencyConflict,
    IdempotencyInProgressTimeout,
    StoredResponse,
    fingerprint,
)
from gateway.http.ids import object_id_for
from gateway.http.problems import (
    FieldError,
    ProblemError,
    encode,
    from_ledger_error,
    problem,
    problem_content_type,
)
from gateway.http.ratelimit import Principal
from gateway.infra.database.records import idempotency_insert
from gateway.infra.observability import problems_total
from gateway.runtime import Services
from ledger.errors import LedgerError

BodyT = TypeVar("BodyT")
json_content_type = "application/json"
idempotency_header = b"idempotency-key"
_body_state_key = "kovra.body"
_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}
_encoder = msgspec.json.Encoder()
_path_pattern = re.compile(r"at `\$\.?([^`]*)`")
_field_pattern = re.compile(r"field `([^`]+)`")
_background: set[asyncio.Task[None]] = set()
log = structlog.get_logger("kovra.requests")


def services_of(request: Request[Any, Any, Any]) -> Services:
    services: Services = request.app.state.services
    return services


def principal_of(request: Request[Any, Any, Any]) -> Principal:
    principal: Principal = request.scope["state"]["principal"]
    return principal


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
    decoder = _decoders.get(body_type)
    if decoder is None:
        decoder = _decoders[body_type] = msgspec.json.Decoder(body_type)
    try:
        return decoder.decode(raw or b"{}")  # type: ignore[no-any-return]
    except msgspec.ValidationError as error:
        message = str(error)
        field = _field_pattern.search(message) or _path_pattern.search(message)
        name = field.group(1) if field and field.group(1) else "body"
        raise ProblemError(
            422,
            "validation_error",
            f"the request body is invalid: {message}",
            errors=[FieldError(field=name, message=message.split(" - ", maxsplit=1)[0])],
        ) from None
    except msgspec.DecodeError as error:
        raise ProblemError(400, "malformed_json", f"the body is not valid JSON: {error}") from None


def json_response(
    status: int, payload: msgspec.Struct, headers: dict[str, str] | None = None
) -> Response[bytes]:
    return Response(
        content=_encoder.encode(payload),
        status_code=status,
        media_type=json_content_type,
        headers=headers,
    )


Execute = Callable[[int], Awaitable[tuple[int, msgspec.Struct]]]


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
    """The 500 problem for an error nobody expected, logged with its traceback (call it
    from the `except` block that caught `error`)."""
    log.exception("unhandled_error", path=scope["path"], error=repr(error))
    return problem_reply(ProblemError(500, "internal_error", "an internal error"), scope)


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


async def idempotent(
    request: Request[Any, Any, Any], *, kind: str, execute: Execute
) -> Response[bytes]:
    """Run `execute(object_id)` at most once per (tenant, Idempotency-Key) and body."""
    reply = await idempotent_reply(
        services_of(request),
        principal_of(request),
        request.scope,
        method=request.method,
        body=await request_body(request),
        kind=kind,
        execute=execute,
    )
    return reply.response()


async def idempotent_reply(
    services: Services,
    principal: Principal,
    scope: Scope,
    *,
    method: str,
    body: bytes,
    kind: str,
    execute: Execute,
) -> Reply:
    """`idempotent` on the raw ASGI scope and the body already read (`gateway.http.hot_routes`)."""
    key = scope_header(scope, idempotency_header)
    if key is None:
        status, payload = await execute(
            object_id_for(tenant_id=principal.tenant_id, kind=kind, idempotency_key=None)
        )
        return Reply(
            status_code=status, body=_encoder.encode(payload), content_type=json_content_type
        )
    request_fingerprint = fingerprint(method=method, path=_target(scope), body=body)
    try:
        stored = await services.idempotency.begin(
            tenant_id=principal.tenant_id, key=key, request_fingerprint=request_fingerprint
        )
    except ValueError as error:
        raise ProblemError(
            422,
            "validation_error",
            str(error),
            errors=[FieldError(field="Idempotency-Key", message=str(error))],
        ) from None
    except IdempotencyConflict:
        raise ProblemError(
            409, "idempotency_conflict", "this Idempotency-Key was used with another request"
        ) from None
    except IdempotencyInProgressTimeout:
        raise ProblemError(
            409, "idempotency_in_progress", "a request with this Idempotency-Key is still running"
        ) from None
    if stored is not None:
        return Reply(
            status_code=stored.status_code,
            body=stored.body,
            content_type=stored.content_type,
            headers={"Idempotent-Replayed": "true"},
        )
    object_id = object_id_for(tenant_id=principal.tenant_id, kind=kind, idempotency_key=key)
    try:
        response = await _execute_to_response(scope, execute, object_id)
    except BaseException:
        await services.idempotency.abandon(
            tenant_id=principal.tenant_id, key=key, request_fingerprint=request_fingerprint
        )
        raise
    await services.idempotency.complete(
        tenant_id=principal.tenant_id,
        key=key,
        request_fingerprint=request_fingerprint,
        response=response,
    )
    _persist(services, principal.tenant_id, key, request_fingerprint, response)
    return Reply(
        status_code=response.status_code, body=response.body, content_type=response.content_type
    )


def _target(scope: Scope) -> str:
    """The path with its query (`?atomic=true` changes what a CSV batch does), so the same
    key with another query is a conflict, not a replay. Without a query it is the path
    alone, as fingerprints were before queries counted. (The path as Litestar's
    `request.url.path` gives it, so fingerprints stored before stay the same.)"""
    path = scope.get("root_path", "") + scope["path"]
    query = bytes(scope.get("query_string", b"")).decode("latin-1")
    return f"{path}?{query}" if query else path


async def _execute_to_response(scope: Scope, execute: Execute, object_id: int) -> StoredResponse:
    """Successes and 4xx problems are final answers to store; anything else propagates."""
    try:
        status, payload = await execute(object_id)
    except LedgerError as error:
        problem_error = from_ledger_error(error)
    except ProblemError as error:
        problem_error = error
    else:
        return StoredResponse(
            status_code=status, body=_encoder.encode(payload), content_type=json_content_type
        )
    if problem_error.status >= 500:
        raise problem_error
    body = encode(
        problem(
            problem_error.status,
            problem_error.code,
            problem_error.detail,
            errors=problem_error.errors,
            request_id=str(scope["state"].get("request_id", "")),
        )
    )
    return StoredResponse(
        status_code=problem_error.status, body=body, content_type=problem_content_type
    )


def _persist(
    services: Services,
    tenant_id: int,
    key: str,
    request_fingerprint: bytes,
    response: StoredResponse,
) -> None:
    """Keep a durable copy of the record, off the request's critical path."""

    async def write() -> None:
        try:
            await services.writer.write(
                idempotency_insert,
                (tenant_id, key, request_fingerprint, response.status_code, response.body),
            )
        except Exception:
            log.exception("idempotency_record_not_persisted", tenant_id=tenant_id)

    task = asyncio.get_running_loop().create_task(write())
    _background.add(task)
    task.add_done_callback(_background.discard)
