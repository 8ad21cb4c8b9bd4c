"""Per-tenant rate limiting and the per-request principal lookup, in one Redis round trip.

Every API request needs the same three facts before its handler runs: whose key this is,
the tenant's standing (role, region, frozen or not), and whether the tenant still has
request budget. Asking Postgres for the first two on every request would put the database
on the hot path, and counting requests in a single process would let `serve --workers N`
admit N times the limit. So Redis caches the principal records (Postgres stays the source
of truth: on a cache miss the caller reloads them and calls `store_*`) and one Lua script
resolves key -> tenant -> GCRA decision atomically, for all gateway processes at once.

GCRA (generic cell rate algorithm) keeps one number per tenant, the theoretical arrival
time (TAT): a tenant may make `limit` requests at once, then one per `window / limit`.
The script reads the clock with `TIME` on the Redis server so processes on hosts with
skewed clocks still agree. Because the TAT is time, not a request count, a policy change
keeps the share of the window already used and refills at the new rate.

Redis data model, every key under a configurable namespace `ns`:
- `{ns}:apikey:{key_hash_hex}`: hash `tenant_id`, `role`, `key_id` (deleted on revoke);
- `{ns}:tenant:{tenant_id}`: hash `requests_per_minute`, `status`, `compliance_region`,
  `daily_limit_usd_minor`;
- `{ns}:rl:{tenant_id}`: the GCRA TAT in microseconds, expiring when the budget is full.
  Microseconds, so a policy can allow up to a million requests a minute (a platform's own
  load tests, its largest partners) and the interval between requests is still exact.

The script derives the tenant keys from the API key record, so it needs one Redis node
(standalone or primary with replicas), not Redis Cluster.
"""

from __future__ import annotations

import math
import re
from typing import Final

import msgspec
from redis.asyncio import Redis

from ledger.invariants import unreachable

roles: Final = frozenset({"admin", "operator", "read_only", "compliance"})
tenant_statuses: Final = frozenset({"active", "frozen"})
compliance_regions: Final = frozenset({"EU", "UK", "ID"})

namespace_default: Final = "kovra"
window_seconds_default: Final = 60
# A day is the longest window a per-minute policy can sensibly be stretched to.
window_seconds_max: Final = 86_400
# Tenant 0 is the platform (SPEC §4); tenant ids are the top 64 bits of an account id.
tenant_id_min: Final = 1
tenant_id_max: Final = 2**64 - 1
key_id_min: Final = 1
key_id_max: Final = 2**63 - 1
# An API key hash is a digest of a random secret: at least 128 bits, at most SHA-512 size.
key_hash_hex_length_min: Final = 32
key_hash_hex_length_max: Final = 128
# Lua numbers are IEEE doubles, exact below 2**53; clock readings in microseconds stay
# below that (2**43 ms is the year 2248) so TAT arithmetic never rounds.
lua_exact_integer_max: Final = 2**53
now_ms_max: Final = 2**43
# As migration 0001's CHECK on limit_policies.
requests_per_minute_max: Final = 1_000_000
# Cached principal records are a copy of Postgres; the TTL bounds how long a missed
# invalidation (a revoke or freeze whose Redis write failed) can linger.
record_cache_ttl_seconds: Final = 3_600

_ms_per_second: Final = 1_000
_namespace_pattern: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_key_hash_pattern: Final = re.compile(r"[0-9a-f]+")
_mode_api_key: Final = "key"
_mode_tenant: Final = "tenant"

# KEYS[1]: the api key hash (mode "key") or the tenant hash (mode "tenant").
# ARGV: namespace, mode, window_ms, now_ms or "" for server time, tenant_id, role.
# Reply: {0} on a cache miss, else {1, tenant_id, role, key_id or "", region, status,
#         allowed (0/1), limit, remaining, reset_ms, retry_after_ms}.
_authenticate_lua: Final = """
local ns, mode, window_us = ARGV[1], ARGV[2], tonumber(ARGV[3]) * 1000
local now_us
if ARGV[4] == '' then
  local t = redis.call('TIME')
  now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now_us = tonumber(ARGV[4]) * 1000
end
local tenant_id, role, key_id = ARGV[5], ARGV[6], ''
if mode == 'key' then
  local found = redis.call('HMGET', KEYS[1], 'tenant_id', 'role', 'key_id')
  if not (found[1] and found[2] and found[3]) then return {0} end
  tenant_id, role, key_id = found[1], found[2], found[3]
end
local tenant = redis.call('HMGET', ns .. ':tenant:' .. tenant_id,
  'requests_per_minute', 'status', 'compliance_region')
local limit = tonumber(tenant[1])
if not (limit and limit >= 1 and tenant[2] and tenant[3]) then return {0} end
-- Rounding the interval up can only make the limit stricter, never looser.
local interval = math.ceil(window_us / limit)
local burst_span = interval * limit
local rl_key = ns .. ':rl:' .. tenant_id
local tat = tonumber(redis.call('GET', rl_key)) or now_us
if tat < now_us then tat = now_us end
local new_tat = tat + interval
-- Replies carry milliseconds, rounded up so a client that waits them is then admitted.
if new_tat - now_us > burst_span then
  return {1, tenant_id, role, key_id, tenant[3], tenant[2], 0, limit, 0,
          math.ceil((tat - now_us) / 1000), math.ceil((new_tat - burst_span - now_us) / 1000)}
end
redis.call('SET', rl_key, string.format('%d', new_tat), 'PX',
           math.ceil((new_tat - now_us) / 1000))
local remaining = math.floor((burst_span - (new_tat - now_us)) / interval)
return {1, tenant_id, role, key_id, tenant[3], tenant[2],
        1, limit, remaining, math.ceil((new_tat - now_us) / 1000), 0}
"""

# KEYS[1]: the record. ARGV: ttl_seconds, then field/value pairs. Replaces the whole hash
# so a field dropped from the record does not survive from an older write.
_store_record_lua: Final = """
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""

_reply_length_hit: Final = 11


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """Who is calling: the tenant, the caller's role and the tenant's standing."""

    tenant_id: int
    role: str
    key_id: int | None
    compliance_region: str
    status: str


class RateLimitDecision(msgspec.Struct, frozen=True, kw_only=True):
    """One GCRA decision; `retry_after_seconds` is 0 when the request is allowed."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int
    retry_after_seconds: int
    window_seconds: int


class AuthOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """The script's answer; on `cache_miss` the caller reloads from Postgres and retries."""

    principal: Principal | None
    decision: RateLimitDecision | None
    cache_miss: bool


_cache_miss: Final = AuthOutcome(principal=None, decision=None, cache_miss=True)


class RateLimiter:
    """Resolves principals and applies per-tenant GCRA limits through one Lua script."""

    def __init__(
        self,
        redis: Redis,
        *,
        namespace: str = namespace_default,
        window_seconds: int = window_seconds_default,
    ) -> None:
        _check_namespace(namespace)
        _check_range("window_seconds", window_seconds, 1, window_seconds_max)
        self._redis = redis
        self._namespace = namespace
        self._window_seconds = window_seconds
        self._authenticate = redis.register_script(_authenticate_lua)
        self._store_record = redis.register_script(_store_record_lua)

    async def authenticate_api_key(
        self, *, key_hash_hex: str, now_ms: int | None = None
    ) -> AuthOutcome:
        """Resolve an API key to its principal and consume one request of its tenant."""
        _check_key_hash(key_hash_hex)
        return await self._run(
            key=self._api_key_key(key_hash_hex),
            mode=_mode_api_key,
            now_ms=now_ms,
            tenant_id="",
            role="",
        )

    async def authenticate_tenant(
        self, *, tenant_id: int, role: str, now_ms: int | None = None
    ) -> AuthOutcome:
        """For JWT callers: look up the tenant's standing and consume one of its requests."""
        _check_tenant_id(tenant_id)
        _check_member("role", role, roles)
        return await self._run(
            key=self._tenant_key(tenant_id),
            mode=_mode_tenant,
            now_ms=now_ms,
            tenant_id=str(tenant_id),
            role=role,
        )

    async def store_api_key(
        self, *, key_hash_hex: str, tenant_id: int, role: str, key_id: int
    ) -> None:
        """Cache an API key's record (after a cache miss, or when the key is created)."""
        _check_key_hash(key_hash_hex)
        _check_tenant_id(tenant_id)
        _check_member("role", role, roles)
        _check_range("key_id", key_id, key_id_min, key_id_max)
        fields: dict[str, str | int] = {"tenant_id": tenant_id, "role": role, "key_id": key_id}
        await self._replace_record(self._api_key_key(key_hash_hex), fields)

    async def revoke_api_key(self, *, key_hash_hex: str) -> None:
        """Forget a revoked key at once; Postgres must mark it revoked first, or a cache
        miss would reload it."""
        _check_key_hash(key_hash_hex)
        await self._redis.delete(self._api_key_key(key_hash_hex))

    async def store_tenant(
        self,
        *,
        tenant_id: int,
        requests_per_minute: int,
        status: str,
        compliance_region: str,
        daily_limit_usd_minor: int,
    ) -> None:
        """Cache a tenant's standing and limits (after a cache miss, or on any change)."""
        _check_tenant_id(tenant_id)
        _check_range("requests_per_minute", requests_per_minute, 1, requests_per_minute_max)
        _check_member("status", status, tenant_statuses)
        _check_member("compliance_region", compliance_region, compliance_regions)
        _check_positive("daily_limit_usd_minor", daily_limit_usd_minor)
        fields: dict[str, str | int] = {
            "requests_per_minute": requests_per_minute,
            "status": status,
            "compliance_region": compliance_region,
            "daily_limit_usd_minor": daily_limit_usd_minor,
        }
        await self._replace_record(self._tenant_key(tenant_id), fields)

    async def _run(
        self, *, key: str, mode: str, now_ms: int | None, tenant_id: str, role: str
    ) -> AuthOutcome:
        clock = "" if now_ms is None else str(_checked_now_ms(now_ms))
        window_ms = self._window_seconds * _ms_per_second
        args: list[str | int] = [self._namespace, mode, window_ms, clock, tenant_id, role]
        reply: object = await self._authenticate(keys=[key], args=args)
        return _decode_outcome(reply, window_seconds=self._window_seconds)

    async def _replace_record(self, key: str, fields: dict[str, str | int]) -> None:
        pairs = [item for field in fields.items() for item in field]
        await self._store_record(keys=[key], args=[record_cache_ttl_seconds, *pairs])

    def _api_key_key(self, key_hash_hex: str) -> str:
        return f"{self._namespace}:apikey:{key_hash_hex}"

    def _tenant_key(self, tenant_id: int) -> str:
        return f"{self._namespace}:tenant:{tenant_id}"


def rate_limit_headers(decision: RateLimitDecision) -> dict[str, str]:
    """The IETF RateLimit headers (draft-ietf-httpapi-ratelimit-headers), plus
    `Retry-After` on a refusal."""
    headers = {
        "RateLimit-Limit": str(decision.limit),
        "RateLimit-Remaining": str(decision.remaining),
        "RateLimit-Reset": str(decision.reset_seconds),
        "RateLimit-Policy": f"{decision.limit};w={decision.window_seconds}",
    }
    if not decision.allowed:
        headers["Retry-After"] = str(decision.retry_after_seconds)
    return headers


def _decode_outcome(reply: object, *, window_seconds: int) -> AuthOutcome:
    """Turn the script's array reply into typed values; anything else is a bug."""
    if not isinstance(reply, list):
        unreachable(f"rate limit script replied {reply!r}")
    items: list[object] = reply
    if items == [0]:
        return _cache_miss
    if len(items) != _reply_length_hit:
        unreachable(f"rate limit script replied {items!r}")
    _, tenant_id, role, key_id, region, status, allowed, limit, remaining, reset, retry = items
    key_id_text = _text(key_id)
    principal = Principal(
        tenant_id=int(_text(tenant_id)),
        role=_text(role),
        key_id=int(key_id_text) if key_id_text else None,
        compliance_region=_text(region),
        status=_text(status),
    )
    decision = RateLimitDecision(
        allowed=_integer(allowed) == 1,
        limit=_integer(limit),
        remaining=_integer(remaining),
        reset_seconds=_ceil_seconds(_integer(reset)),
        retry_after_seconds=_ceil_seconds(_integer(retry)),
        window_seconds=window_seconds,
    )
    return AuthOutcome(principal=principal, decision=decision, cache_miss=False)


def _text(value: object) -> str:
    # Clients built with decode_responses=True hand back str; the default is bytes.
    if isinstance(value, bytes):
        return value.decode()
    if not isinstance(value, str):
        unreachable(f"expected a Redis string, got {value!r}")
    return value


def _integer(value: object) -> int:
    if not isinstance(value, int):
        unreachable(f"expected a Redis integer, got {value!r}")
    return value


def _ceil_seconds(milliseconds: int) -> int:
    # Rounding up: a client that waits `Retry-After` seconds must then be admitted.
    return math.ceil(milliseconds / _ms_per_second)


def _checked_now_ms(now_ms: int) -> int:
    _check_range("now_ms", now_ms, 0, now_ms_max)
    return now_ms


def _check_namespace(namespace: str) -> None:
    if not _namespace_pattern.fullmatch(namespace):
        raise ValueError(f"namespace must match {_namespace_pattern.pattern}, got {namespace!r}")


def _check_key_hash(key_hash_hex: str) -> None:
    length_ok = key_hash_hex_length_min <= len(key_hash_hex) <= key_hash_hex_length_max
    if not (length_ok and _key_hash_pattern.fullmatch(key_hash_hex)):
        raise ValueError(
            f"key_hash_hex must be {key_hash_hex_length_min}-{key_hash_hex_length_max} "
            "lowercase hex digits"
        )


def _check_tenant_id(tenant_id: int) -> None:
    _check_range("tenant_id", tenant_id, tenant_id_min, tenant_id_max)


def _check_positive(field: str, value: int) -> None:
    _check_range(field, value, 1, lua_exact_integer_max)


def _check_range(field: str, value: int, low: int, high: int) -> None:
    # bool is an int subclass; True as a limit or an id is always a caller's mistake.
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{field} must be an integer in [{low}, {high}], got {value!r}")


def _check_member(field: str, value: str, allowed: frozenset[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{field} must be one of {sorted(allowed)}, got {value!r}")
