"""A tenant JWT is accepted only as Kovra issues it: HS256 under `KOVRA_JWT_SECRET`, with
`exp`, `sub` (a tenant id) and `role`.

Through the whole ASGI app in this process over real Postgres and Redis, every other token
is `401 unauthorized` and costs its tenant nothing: an unsigned token (`alg: none`, in any
spelling), a token signed with another algorithm (HS384 or HS512 under the right secret, an
RS256 token), a token missing a claim, a token whose claim is wrong (an unknown role, a
tenant id that is 0, negative, not a number or beyond any tenant, an expiry past the leeway,
a time before `nbf`), or signed with another secret. A refused token names a real tenant, and
that tenant's rate-limit budget is the same after the refusals as before. The valid token
beside them is served, so each refusal is the token's doing.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.http.auth import jwt_leeway_seconds
from tests import redis_server
from tests.gateway.api_matrix import Api, Tenant, environment
from tests.postgres import app_for_a_module

redis_url = redis_server.redis_url(4)  # This module's own database, emptied around it.
jwt_secret = "jwt-tests-secret-" + "s" * 60  # Long enough for HS512 too.
on_the_modules_loop = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    data_dir = tmp_path_factory.mktemp("auth")
    settings = {**environment, "KOVRA_JWT_SECRET": jwt_secret}
    async with app_for_a_module(data_dir, redis_url=redis_url, environment=settings) as (
        app,
        client,
    ):
        yield Api(app, client)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tenant(api: Api) -> Tenant:
    return await api.tenant("jwt")


def _claims(tenant: Tenant, **changes: Any) -> dict[str, Any]:
    """Valid claims for the tenant's admin, with `changes` (None removes a claim)."""
    claims = {"sub": str(tenant.tenant_id), "role": "admin", "exp": int(time.time()) + 300}
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}


def _segment(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def _unsigned(claims: dict[str, Any], algorithm: str) -> str:
    """A token with no signature, its header naming `algorithm` (`none` and kin)."""
    return f"{_segment({'alg': algorithm, 'typ': 'JWT'})}.{_segment(claims)}."


def _relabelled(token: str, algorithm: str) -> str:
    """The token with its header naming `algorithm` instead, payload and signature kept."""
    _, payload, signature = token.split(".")
    return f"{_segment({'alg': algorithm, 'typ': 'JWT'})}.{payload}.{signature}"


def _rs256(claims: dict[str, Any]) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims, key, algorithm="RS256")


def _signed(claims: dict[str, Any], *, algorithm: str = "HS256", secret: str = jwt_secret) -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


Forger = Callable[[Tenant], str]
refused_tokens: dict[str, Forger] = {
    "alg none": lambda t: _unsigned(_claims(t), "none"),
    "alg None": lambda t: _unsigned(_claims(t), "None"),
    "alg NONE": lambda t: _unsigned(_claims(t), "NONE"),
    "alg none with a valid signature": lambda t: _relabelled(_signed(_claims(t)), "none"),
    "HS384 with the right secret": lambda t: _signed(_claims(t), algorithm="HS384"),
    "HS512 with the right secret": lambda t: _signed(_claims(t), algorithm="HS512"),
    "RS256": lambda t: _rs256(_claims(t)),
    "another secret": lambda t: _signed(_claims(t), secret="another-secret-" + "z" * 40),
    "no exp": lambda t: _signed(_claims(t, exp=None)),
    "no sub": lambda t: _signed(_claims(t, sub=None)),
    "no role": lambda t: _signed(_claims(t, role=None)),
    "an unknown role": lambda t: _signed(_claims(t, role="superuser")),
    "a role that is a list": lambda t: _signed(_claims(t, role=["admin"])),
    "tenant 0": lambda t: _signed(_claims(t, sub="0")),
    "a negative tenant": lambda t: _signed(_claims(t, sub=f"-{t.tenant_id}")),
    "a tenant that is not a number": lambda t: _signed(_claims(t, sub="acme")),
    "a tenant that is a number, not a string": lambda t: _signed(_claims(t, sub=t.tenant_id)),
    "a tenant with a sign": lambda t: _signed(_claims(t, sub=f"+{t.tenant_id}")),
    "a tenant with spaces": lambda t: _signed(_claims(t, sub=f" {t.tenant_id} ")),
    "a tenant with underscores": lambda t: _signed(
        _claims(t, sub=f"{str(t.tenant_id)[:3]}_{str(t.tenant_id)[3:]}")
    ),
    "a tenant in other digits": lambda t: _signed(
        _claims(t, sub=str(t.tenant_id).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")))
    ),
    "a tenant beyond any tenant id": lambda t: _signed(_claims(t, sub=str(2**64))),
    "a tenant beyond a bigint": lambda t: _signed(_claims(t, sub=str(2**63))),
    "a tenant that does not exist": lambda t: _signed(_claims(t, sub=str(2**62 + 7))),
    "expired beyond the leeway": lambda t: _signed(
        _claims(t, exp=int(time.time()) - jwt_leeway_seconds - 60)
    ),
    "an expiry that is not a time": lambda t: _signed(_claims(t, exp="tomorrow")),
    "not valid yet": lambda t: _signed(_claims(t, nbf=int(time.time()) + 600)),
}


async def _balances(api: Api, token: str) -> httpx.Response:
    return await api.client.get("/v1/balances", headers={"Authorization": f"Bearer {token}"})


@on_the_modules_loop
@pytest.mark.parametrize("forge", refused_tokens.values(), ids=refused_tokens.keys())
async def test_a_token_not_as_issued_is_refused(api: Api, tenant: Tenant, forge: Forger) -> None:
    response = await _balances(api, forge(tenant))
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")


@on_the_modules_loop
async def test_the_token_as_issued_is_served_also_within_the_leeway(
    api: Api, tenant: Tenant
) -> None:
    assert (await _balances(api, _signed(_claims(tenant)))).status_code == 200
    lately_expired = _claims(tenant, exp=int(time.time()) - jwt_leeway_seconds // 2)
    assert (await _balances(api, _signed(lately_expired))).status_code == 200
    for role in ("operator", "read_only", "compliance"):
        assert (await _balances(api, _signed(_claims(tenant, role=role)))).status_code == 200


budget_per_minute = 60


@on_the_modules_loop
async def test_refused_tokens_cost_their_tenant_nothing(api: Api) -> None:
    """Tokens naming a tenant but refused do not spend its budget, so nobody without its
    secret can throttle it."""
    tenant = await api.tenant("jwt budget", requests_per_minute=budget_per_minute)
    first = await _balances(api, _signed(_claims(tenant)))
    assert first.status_code == 200, first.text
    for forge in refused_tokens.values():
        assert (await _balances(api, forge(tenant))).status_code == 401
    second = await _balances(api, _signed(_claims(tenant)))
    assert second.status_code == 200, second.text
    # The budget only grows back with time, one request a second here: if the refusals had
    # been counted, the second request would find dozens fewer left than the first did.
    remaining = [int(r.headers["ratelimit-remaining"]) for r in (first, second)]
    assert remaining[1] >= remaining[0] - 1, remaining
