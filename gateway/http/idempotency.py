"""`Idempotency-Key`: the first response replayed, a changed request refused, everywhere.

Partners retry POSTs after timeouts and dropped connections; SPEC §5 promises that the same
key and body replay the first response and that the same key with another body is `409`.
The check-and-claim must be atomic across every gateway process, or two retries racing
on different workers would both run the request, so each step is one Lua script on the
record `{ns}:idem:{tenant_id}:{key}`, a hash with:
- `fp`: the request fingerprint (SHA-256 of method, path and body);
- `state`: `in_progress` while one request owns the key, then `completed`;
- `status`, `ctype`, `body`: the stored response, once completed.

An in-progress record is a lease: it expires (60 s by default) so a crashed worker does not
block the key forever. Waiters poll the same claim script, so when a lease lapses exactly
one of them re-creates the record and runs the request; the rest keep waiting for it.
Money never depends on this store alone: ledger transfer ids are deterministic, so even a
request that runs twice after a lapsed lease cannot move money twice.

`Idempotency` runs a handler's work under a key: it claims the key for the request's
fingerprint, runs the work once, stores the answer (a success or a 4xx problem) for
replays, and keeps a durable copy in Postgres (`idempotency_records`) off the critical path.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import msgspec
import structlog
from litestar import Request, Response
from litestar.types import Scope
from redis.asyncio import Redis

from gateway.http.ids import object_id_for
from gateway.http.problems import (
    ProblemError,
    encode,
    from_domain_error,
    invalid,
    problem,
    problem_content_type,
)
from gateway.http.ratelimit import Principal
from gateway.http.requests import Reply, json_content_type, principal_of, request_body, scope_header
from gateway.infra.database.batch import BatchStatement, BatchWriter
from ledger.errors import DomainError
from ledger.invariants import unreachable

idempotency_ttl_seconds: Final = 86_400
key_length_max: Final = 255
wait_timeout_ms_default: Final = 10_000
lease_ms_default: Final = 60_000
poll_interval_ms_default: Final = 5
namespace_default: Final = "kovra"
# Tenant 0 is the platform (SPEC §4); tenant ids are the top 64 bits of an account id.
tenant_id_min: Final = 1
tenant_id_max: Final = 2**64 - 1
fingerprint_length: Final = hashlib.sha256().digest_size
status_code_min: Final = 100
status_code_max: Final = 599
# Generous bounds on the knobs; they exist to catch unit mistakes (seconds passed as ms).
ttl_seconds_max: Final = 30 * 86_400
duration_ms_max: Final = 3_600_000

header_name: Final = "Idempotency-Key"
header_key: Final = b"idempotency-key"
# VCHAR (RFC 5234): visible ASCII, no spaces or control characters.
_key_pattern: Final = re.compile(r"[\x21-\x7e]+")
_namespace_pattern: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_fingerprint_domain: Final = b"kovra.idempotency.v1\x00"
_length_prefix_bytes: Final = 8
_ms_per_second: Final = 1_000

# KEYS[1]: the record. ARGV: fingerprint, lease_ms.
# Reply: {"created"} | {"conflict"} | {"in_progress"} | {"completed", status, ctype, body}.
_claim_lua: Final = """
local record = redis.call('HMGET', KEYS[1], 'fp', 'state', 'status', 'ctype', 'body')
if not record[1] then
  redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'state', 'in_progress')
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {'created'}
end
if record[1] ~= ARGV[1] then return {'conflict'} end
if record[2] == 'completed' then return {'completed', record[3], record[4], record[5]} end
return {'in_progress'}
"""

# KEYS[1]: the record. ARGV: fingerprint, status, content type, body, ttl_seconds.
# The first completion wins, so every replay answers the same response. A record that has
# already lapsed is written anyway: the request ran, and a later retry should replay it.
_complete_lua: Final = """
local record = redis.call('HMGET', KEYS[1], 'fp', 'state')
if record[1] and (record[1] ~= ARGV[1] or record[2] == 'completed') then return 0 end
redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'state', 'completed',
  'status', ARGV[2], 'ctype', ARGV[3], 'body', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""

# KEYS[1]: the record. ARGV: fingerprint. Never deletes a completed response.
_abandon_lua: Final = """
local record = redis.call('HMGET', KEYS[1], 'fp', 'state')
if record[1] == ARGV[1] and record[2] == 'in_progress' then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# The durable copy of each answer, for audit and support; replays come from Redis.
idempotency_insert: Final = BatchStatement(
    table="idempotency_records",
    row_type="idempotency_records_batch_row",
    columns=(
        "tenant_id",
        "idempotency_key",
        "request_fingerprint",
        "response_status",
        "response_body",
    ),
    types=("bigint", "text", "bytea", "smallint", "bytea"),
    on_conflict="ON CONFLICT DO NOTHING",
)

_completed_reply_length: Final = 4
_state_completed: Final = "completed"


class StoredResponse(msgspec.Struct, frozen=True, kw_only=True):
    """The first response to an idempotent request, replayed byte for byte."""

    status_code: int
    body: bytes
    content_type: str


class IdempotencyConflict(Exception):
    """The key was already used with a different method, path or body (`409`)."""


class IdempotencyInProgressTimeout(Exception):
    """Another request with the same key is still running and did not finish in time."""


class _Claim(enum.Enum):
    created = "created"
    conflict = "conflict"
    in_progress = "in_progress"


_claims_by_state: Final = {claim.value: claim for claim in _Claim}


def fingerprint(*, method: str, path: str, body: bytes) -> bytes:
    """SHA-256 over length-prefixed parts, so no two (method, path, body) triples collide
    by shifting bytes from one part to the next."""
    digest = hashlib.sha256(_fingerprint_domain)
    for part in (method.encode(), path.encode(), body):
        digest.update(len(part).to_bytes(_length_prefix_bytes, "big"))
        digest.update(part)
    return digest.digest()


class IdempotencyStore:
    """Claims, completes and replays idempotency records, atomically across processes."""

    def __init__(
        self,
        redis: Redis,
        *,
        namespace: str = namespace_default,
        ttl_seconds: int = idempotency_ttl_seconds,
        poll_interval_ms: int = poll_interval_ms_default,
        wait_timeout_ms: int = wait_timeout_ms_default,
        lease_ms: int = lease_ms_default,
    ) -> None:
        if not _namespace_pattern.fullmatch(namespace):
            raise ValueError(f"namespace must match {_namespace_pattern.pattern}")
        _check_range("ttl_seconds", ttl_seconds, 1, ttl_seconds_max)
        _check_range("poll_interval_ms", poll_interval_ms, 1, duration_ms_max)
        _check_range("wait_timeout_ms", wait_timeout_ms, 0, duration_ms_max)
        _check_range("lease_ms", lease_ms, 1, duration_ms_max)
        if redis.connection_pool.connection_kwargs.get("decode_responses"):
            # Stored bodies are arbitrary bytes; a decoding client would corrupt them.
            raise ValueError("redis must be created with decode_responses=False")
        self._namespace = namespace
        self._ttl_seconds = ttl_seconds
        self._poll_interval_s = poll_interval_ms / _ms_per_second
        self._wait_timeout_s = wait_timeout_ms / _ms_per_second
        self._lease_ms = lease_ms
        self._claim = redis.register_script(_claim_lua)
        self._complete = redis.register_script(_complete_lua)
        self._abandon = redis.register_script(_abandon_lua)

    async def begin(
        self, *, tenant_id: int, key: str, request_fingerprint: bytes
    ) -> StoredResponse | None:
        """None: the caller owns the key and runs the request. A response: replay it.

        Raises `IdempotencyConflict` when the key belongs to another request, and
        `IdempotencyInProgressTimeout` when its first request does not finish in time.
        """
        record = self._record_key(tenant_id, key)
        _check_fingerprint(request_fingerprint)
        deadline = time.monotonic() + self._wait_timeout_s
        while True:
            claim = await self._try_claim(record, request_fingerprint)
            if claim is _Claim.created:
                return None
            if claim is _Claim.conflict:
                raise IdempotencyConflict(f"{header_name} {key!r} was used for another request")
            if isinstance(claim, StoredResponse):
                return claim
            if time.monotonic() >= deadline:
                raise IdempotencyInProgressTimeout(
                    f"the request holding {header_name} {key!r} is still in progress"
                )
            await asyncio.sleep(self._poll_interval_s)

    async def complete(
        self, *, tenant_id: int, key: str, request_fingerprint: bytes, response: StoredResponse
    ) -> None:
        """Store the response for replays, unless the key now belongs to another request
        or already holds a response (the first one stays authoritative)."""
        record = self._record_key(tenant_id, key)
        _check_fingerprint(request_fingerprint)
        _check_range("status_code", response.status_code, status_code_min, status_code_max)
        args: list[bytes | str | int] = [
            request_fingerprint,
            response.status_code,
            response.content_type,
            response.body,
            self._ttl_seconds,
        ]
        await self._complete(keys=[record], args=args)

    async def abandon(self, *, tenant_id: int, key: str, request_fingerprint: bytes) -> None:
        """Release an in-progress claim whose request had no side effect, so a retry runs."""
        record = self._record_key(tenant_id, key)
        _check_fingerprint(request_fingerprint)
        await self._abandon(keys=[record], args=[request_fingerprint])

    async def _try_claim(self, record: str, request_fingerprint: bytes) -> _Claim | StoredResponse:
        reply: object = await self._claim(keys=[record], args=[request_fingerprint, self._lease_ms])
        if not isinstance(reply, list) or not reply:
            unreachable(f"idempotency claim script replied {reply!r}")
        items: list[object] = reply
        state = _bytes(items[0]).decode()
        if state in _claims_by_state:
            return _claims_by_state[state]
        if state != _state_completed or len(items) != _completed_reply_length:
            unreachable(f"idempotency claim script replied {items!r}")
        return StoredResponse(
            status_code=int(_bytes(items[1])),
            content_type=_bytes(items[2]).decode(),
            body=_bytes(items[3]),
        )

    def _record_key(self, tenant_id: int, key: str) -> str:
        _check_range("tenant_id", tenant_id, tenant_id_min, tenant_id_max)
        if len(key) > key_length_max or not _key_pattern.fullmatch(key):
            raise ValueError(
                f"{header_name} must be 1-{key_length_max} visible ASCII characters (no spaces)"
            )
        return f"{self._namespace}:idem:{tenant_id}:{key}"


def _bytes(value: object) -> bytes:
    if not isinstance(value, bytes):
        unreachable(f"expected a Redis bulk string, got {value!r}")
    return value


def _check_fingerprint(request_fingerprint: bytes) -> None:
    if not isinstance(request_fingerprint, bytes) or len(request_fingerprint) != fingerprint_length:
        raise ValueError(
            f"request_fingerprint must be {fingerprint_length} bytes from fingerprint()"
        )


def _check_range(field: str, value: int, low: int, high: int) -> None:
    # bool is an int subclass; True as a limit or an id is always a caller's mistake.
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{field} must be an integer in [{low}, {high}], got {value!r}")


# A handler's work under a key: given the object's id (derived from the tenant and the key,
# so a retry reuses it), the status and payload of its answer.
Execute = Callable[[int], Awaitable[tuple[int, msgspec.Struct]]]
_encoder = msgspec.json.Encoder()
log = structlog.get_logger("kovra.idempotency")


class Idempotency:
    """Runs each request's work at most once per (tenant, Idempotency-Key) and request."""

    def __init__(self, store: IdempotencyStore, writer: BatchWriter) -> None:
        self.store = store
        self._writer = writer
        self._background: set[asyncio.Task[None]] = set()

    async def response(
        self, request: Request[Any, Any, Any], *, kind: str, execute: Execute
    ) -> Response[bytes]:
        """`reply` for a Litestar handler: the request's caller, scope and body."""
        reply = await self.reply(
            principal_of(request),
            request.scope,
            method=request.method,
            body=await request_body(request),
            kind=kind,
            execute=execute,
        )
        return reply.response()

    async def reply(
        self,
        principal: Principal,
        scope: Scope,
        *,
        method: str,
        body: bytes,
        kind: str,
        execute: Execute,
    ) -> Reply:
        """Run `execute(object_id)` once for this key and request, or replay its answer; on
        the raw ASGI scope and the body already read (`gateway.http.hot_routes`)."""
        key = scope_header(scope, header_key)
        if key is None:
            status, payload = await execute(
                object_id_for(tenant_id=principal.tenant_id, kind=kind, idempotency_key=None)
            )
            return Reply(
                status_code=status, body=_encoder.encode(payload), content_type=json_content_type
            )
        request_fingerprint = fingerprint(method=method, path=_target(scope), body=body)
        stored = await self._begin(principal, key, request_fingerprint)
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
            await self.store.abandon(
                tenant_id=principal.tenant_id, key=key, request_fingerprint=request_fingerprint
            )
            raise
        await self.store.complete(
            tenant_id=principal.tenant_id,
            key=key,
            request_fingerprint=request_fingerprint,
            response=response,
        )
        self._persist(principal.tenant_id, key, request_fingerprint, response)
        return Reply(
            status_code=response.status_code,
            body=response.body,
            content_type=response.content_type,
        )

    async def _begin(
        self, principal: Principal, key: str, request_fingerprint: bytes
    ) -> StoredResponse | None:
        """The key claimed for this request (None), or the answer to replay; a problem for
        a key that is malformed, used by another request, or held too long by its first."""
        try:
            return await self.store.begin(
                tenant_id=principal.tenant_id, key=key, request_fingerprint=request_fingerprint
            )
        except ValueError as error:
            raise invalid(header_name, detail=str(error), message=str(error)) from None
        except IdempotencyConflict:
            raise ProblemError(
                409, "idempotency_conflict", "this Idempotency-Key was used with another request"
            ) from None
        except IdempotencyInProgressTimeout:
            raise ProblemError(
                409,
                "idempotency_in_progress",
                "a request with this Idempotency-Key is still running",
            ) from None

    def _persist(
        self, tenant_id: int, key: str, request_fingerprint: bytes, response: StoredResponse
    ) -> None:
        """Keep a durable copy of the record, off the request's critical path."""

        async def write() -> None:
            try:
                await self._writer.write(
                    idempotency_insert,
                    (tenant_id, key, request_fingerprint, response.status_code, response.body),
                )
            except Exception:
                log.exception("idempotency_record_not_persisted", tenant_id=tenant_id)

        task = asyncio.get_running_loop().create_task(write())
        self._background.add(task)
        task.add_done_callback(self._background.discard)


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
    except DomainError as error:
        problem_error = from_domain_error(error)
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
