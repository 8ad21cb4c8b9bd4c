"""Who is calling: API keys and JWTs for tenants, a bearer token for the admin plane.

Tenant requests are authenticated and rate limited in one Redis round trip (see
`gateway.http.ratelimit`). Postgres is read only when Redis does not know a key or tenant yet
(after a restart), and unknown keys are remembered briefly so a flood of bad keys cannot
turn into a flood of database reads.
"""

from __future__ import annotations

import hashlib
import hmac
import time

import asyncpg
import jwt

from gateway.http.problems import ProblemError
from gateway.http.ratelimit import AuthOutcome, Principal, RateLimitDecision, RateLimiter
from gateway.tenancy.records import (
    api_key_prefix,
    find_active_api_key,
    get_tenant,
    roles,
    tenant_id_max,
    tenant_id_min,
)

# `Principal` (who is calling) is made by the rate limiter's script; domains take it from here.
__all__ = ["Authenticator", "Principal", "bearer_token"]

bearer_token_length_max = 4096
unknown_key_cache_size_max = 10_000
unknown_key_cache_seconds = 30
jwt_algorithms = ["HS256"]
jwt_leeway_seconds = 30


class _UnknownKeys:
    """A bounded, short-lived memory of key hashes Postgres did not know."""

    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}

    def known_bad(self, key_hash_hex: str) -> bool:
        expiry = self._expiry.get(key_hash_hex)
        if expiry is None:
            return False
        if expiry < time.monotonic():
            del self._expiry[key_hash_hex]
            return False
        return True

    def remember(self, key_hash_hex: str) -> None:
        if len(self._expiry) >= unknown_key_cache_size_max:
            self._expiry.clear()  # Bounded memory beats perfect recall here.
        self._expiry[key_hash_hex] = time.monotonic() + unknown_key_cache_seconds


_unknown_keys = _UnknownKeys()


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(
        401, "unauthorized", detail, headers={"WWW-Authenticate": 'Bearer realm="kovra"'}
    )


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise _unauthorized("send Authorization: Bearer <API key or JWT>")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > bearer_token_length_max:
        raise _unauthorized("send Authorization: Bearer <API key or JWT>")
    return token


def _tenant_named(subject: object) -> int | None:
    """The tenant id a JWT's `sub` names, written as Kovra writes one: ASCII digits without a
    sign, spaces, separators or leading zeros, within the ids a tenant can have. None for
    anything else, so that one tenant has one spelling and no `sub` reaches Postgres or the
    rate limiter out of their range."""
    if not isinstance(subject, str) or not subject.isascii() or not subject.isdigit():
        return None
    if len(subject) > len(str(tenant_id_max)):
        return None
    tenant_id = int(subject)
    if str(tenant_id) != subject or not tenant_id_min <= tenant_id <= tenant_id_max:
        return None
    return tenant_id


class Authenticator:
    """Authenticates tenant requests (API key or JWT, with one unit of the rate limit) and
    the admin plane's bearer token."""

    def __init__(
        self,
        *,
        limiter: RateLimiter,
        pool: asyncpg.Pool,
        jwt_secret: str | None,
        admin_token: str | None,
    ) -> None:
        self._limiter = limiter
        self._pool = pool
        self._jwt_secret = jwt_secret
        self._admin_token = admin_token

    async def authenticate_tenant_request(
        self, authorization: str | None
    ) -> tuple[Principal, RateLimitDecision]:
        """The caller's tenant and role, with one unit of its rate limit consumed."""
        token = bearer_token(authorization)
        if token.startswith(api_key_prefix):
            outcome = await self._authenticate_api_key(token)
        else:
            outcome = await self._authenticate_jwt(token)
        if outcome.principal is None or outcome.decision is None:
            raise ProblemError(503, "dependency_unavailable", "authentication state is unavailable")
        return outcome.principal, outcome.decision

    async def _authenticate_api_key(self, token: str) -> AuthOutcome:
        key_hash_hex = hashlib.sha256(token.encode()).hexdigest()
        if _unknown_keys.known_bad(key_hash_hex):
            raise _unauthorized("the API key is invalid or revoked")
        outcome = await self._limiter.authenticate_api_key(key_hash_hex=key_hash_hex)
        if not outcome.cache_miss:
            return outcome
        found = await find_active_api_key(self._pool, bytes.fromhex(key_hash_hex))
        if found is None:
            _unknown_keys.remember(key_hash_hex)
            raise _unauthorized("the API key is invalid or revoked")
        key, tenant = found
        await self._limiter.store_tenant(
            tenant_id=tenant.id,
            requests_per_minute=tenant.requests_per_minute,
            status=tenant.status,
            compliance_region=tenant.compliance_region,
            daily_limit_usd_minor=tenant.daily_limit_usd_minor,
        )
        await self._limiter.store_api_key(
            key_hash_hex=key_hash_hex, tenant_id=tenant.id, role=key.role, key_id=key.id
        )
        return await self._limiter.authenticate_api_key(key_hash_hex=key_hash_hex)

    async def _authenticate_jwt(self, token: str) -> AuthOutcome:
        secret = self._jwt_secret
        if secret is None:
            raise _unauthorized("the API key is invalid or revoked")
        try:
            claims = jwt.decode(
                token,
                secret,
                algorithms=jwt_algorithms,
                leeway=jwt_leeway_seconds,
                options={"require": ["exp", "sub", "role"]},
            )
        except jwt.InvalidTokenError as error:
            raise _unauthorized(f"the JWT is not valid: {error}") from None
        tenant_id = _tenant_named(claims["sub"])
        role = claims["role"]
        if tenant_id is None or role not in roles:
            raise _unauthorized("the JWT names an unknown role or tenant")
        outcome = await self._limiter.authenticate_tenant(tenant_id=tenant_id, role=role)
        if not outcome.cache_miss:
            return outcome
        tenant = await get_tenant(self._pool, tenant_id)
        if tenant is None:
            raise _unauthorized("the JWT names an unknown tenant")
        await self._limiter.store_tenant(
            tenant_id=tenant.id,
            requests_per_minute=tenant.requests_per_minute,
            status=tenant.status,
            compliance_region=tenant.compliance_region,
            daily_limit_usd_minor=tenant.daily_limit_usd_minor,
        )
        return await self._limiter.authenticate_tenant(tenant_id=tenant_id, role=role)

    def authenticate_admin(self, authorization: str | None) -> str:
        """The admin plane's actor name; the token is compared in constant time."""
        expected = self._admin_token
        if expected is None:
            raise ProblemError(403, "admin_disabled", "set KOVRA_ADMIN_TOKEN to enable /admin/v1")
        token = bearer_token(authorization)
        if not hmac.compare_digest(token.encode(), expected.encode()):
            raise _unauthorized("the admin token is not valid")
        return "admin-token"
