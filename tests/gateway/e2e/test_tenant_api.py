"""End to end through `kovra serve --workers 2` against real Postgres and Redis: the tenant
API authenticates, isolates tenants, validates input, replays idempotent requests, enforces
rate limits across workers and moves money exactly as the ledger says; operators page
through tenants and a tenant's API keys (never their secrets) on the admin plane."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt

from tests.gateway.e2e.conftest import Deployment, bearer

hold_body = {"currency": "EUR", "amount": 2_500, "reference": "order-42"}


def _problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status, body
    assert body["code"] == code, body
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def test_requests_without_valid_credentials_are_refused(deployment: Deployment) -> None:
    url = f"{deployment.base_url}/v1/balances"
    missing = httpx.get(url)
    _problem(missing, 401, "unauthorized")
    assert missing.headers["www-authenticate"].startswith("Bearer")
    _problem(httpx.get(url, headers=bearer("kovra_sk_not-a-key")), 401, "unauthorized")
    _problem(httpx.get(url, headers={"Authorization": "Basic abc"}), 401, "unauthorized")
    _problem(httpx.get(url, headers=bearer("a.b.c")), 401, "unauthorized")
    _problem(
        httpx.post(
            f"{deployment.base_url}/admin/v1/tenants",
            json={"name": "x"},
            headers=bearer("wrong-admin-token"),
        ),
        401,
        "unauthorized",
    )


def test_revoked_keys_stop_working_at_once(deployment: Deployment) -> None:
    tenant_id, _ = deployment.tenant()
    created = httpx.post(
        f"{deployment.base_url}/admin/v1/tenants/{tenant_id}/api-keys",
        json={"role": "operator"},
        headers=deployment.admin(),
    )
    assert created.status_code == 201, created.text
    key = created.json()
    url = f"{deployment.base_url}/v1/balances"
    assert httpx.get(url, headers=bearer(key["secret"])).status_code == 200
    revoked = httpx.delete(
        f"{deployment.base_url}/admin/v1/tenants/{tenant_id}/api-keys/{key['id']}",
        headers=deployment.admin(),
    )
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"]
    _problem(httpx.get(url, headers=bearer(key["secret"])), 401, "unauthorized")
    # The operator finds both keys, the revoked one marked, and neither's secret.
    keys_url = f"{deployment.base_url}/admin/v1/tenants/{tenant_id}/api-keys"
    keys = httpx.get(keys_url, headers=deployment.admin()).json()
    assert [(k["role"], k["revoked_at"] is None) for k in keys["data"]] == [
        ("admin", True),
        ("operator", False),
    ]
    assert all(k["secret"] is None for k in keys["data"])
    assert keys["next_cursor"] is None
    _problem(httpx.get(keys_url, headers=bearer(key["secret"])), 401, "unauthorized")


def test_operators_page_through_tenants(deployment: Deployment) -> None:
    created = [deployment.tenant(name=f"paged-{number}")[0] for number in range(3)]
    url = f"{deployment.base_url}/admin/v1/tenants"
    seen: list[int] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2"} if cursor is None else {"limit": "2", "cursor": cursor}
        page = httpx.get(url, params=params, headers=deployment.admin())
        assert page.status_code == 200, page.text
        seen += [tenant["id"] for tenant in page.json()["data"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen)
    assert set(created) <= set(seen)
    frozen = httpx.put(
        f"{url}/{created[1]}/status", json={"status": "frozen"}, headers=deployment.admin()
    )
    assert frozen.status_code == 200, frozen.text
    only_frozen = httpx.get(url, params={"status": "frozen"}, headers=deployment.admin()).json()
    assert created[1] in [tenant["id"] for tenant in only_frozen["data"]]
    assert {tenant["status"] for tenant in only_frozen["data"]} == {"frozen"}
    _problem(
        httpx.get(url, params={"cursor": "x"}, headers=deployment.admin()), 422, "validation_error"
    )
    _problem(
        httpx.get(url, params={"limit": "501"}, headers=deployment.admin()), 422, "validation_error"
    )
    tenant_key = deployment.tenant()[1]
    _problem(httpx.get(url, headers=bearer(tenant_key)), 401, "unauthorized")


def test_jwts_carry_tenant_and_role(deployment: Deployment) -> None:
    tenant_id, _ = deployment.tenant()
    secret = deployment.environment["KOVRA_JWT_SECRET"]

    def token(role: str, expires_in: int) -> str:
        claims = {"sub": str(tenant_id), "role": role, "exp": int(time.time()) + expires_in}
        return jwt.encode(claims, secret, algorithm="HS256")

    url = f"{deployment.base_url}/v1/balances"
    assert httpx.get(url, headers=bearer(token("read_only", 60))).status_code == 200
    _problem(
        httpx.post(
            f"{deployment.base_url}/v1/holds",
            json=hold_body,
            headers=bearer(token("read_only", 60)),
        ),
        403,
        "forbidden",
    )
    _problem(httpx.get(url, headers=bearer(token("operator", -120))), 401, "unauthorized")
    forged = jwt.encode(
        {"sub": str(tenant_id), "role": "admin", "exp": int(time.time()) + 60},
        "another-secret-" + "z" * 40,
        algorithm="HS256",
    )
    _problem(httpx.get(url, headers=bearer(forged)), 401, "unauthorized")


def test_a_tenant_can_neither_read_nor_move_another_tenants_money(
    deployment: Deployment,
) -> None:
    _, owner = deployment.tenant(name="owner")
    _, intruder = deployment.tenant(name="intruder")
    deployment.deposit(owner, "EUR", 10_000)
    deployment.deposit(intruder, "EUR", 10_000)
    hold = httpx.post(f"{deployment.base_url}/v1/holds", json=hold_body, headers=bearer(owner))
    assert hold.status_code == 201, hold.text
    hold_url = f"{deployment.base_url}/v1/holds/{hold.json()['id']}"
    _problem(httpx.get(hold_url, headers=bearer(intruder)), 404, "not_found")
    _problem(httpx.post(f"{hold_url}/capture", json={}, headers=bearer(intruder)), 404, "not_found")
    _problem(httpx.post(f"{hold_url}/void", json={}, headers=bearer(intruder)), 404, "not_found")
    owner_balance = _balance(deployment, owner, "EUR")
    assert (owner_balance["posted"], owner_balance["pending"]) == (10_000, 2_500)
    assert _balance(deployment, intruder, "EUR")["posted"] == 10_000
    statement = httpx.get(
        f"{deployment.base_url}/v1/statements", params={"currency": "EUR"}, headers=bearer(intruder)
    ).json()
    assert [entry["type"] for entry in statement["data"]] == ["deposit"]
    assert httpx.get(hold_url, headers=bearer(owner)).json()["status"] == "pending"


def _balance(deployment: Deployment, api_key: str, currency: str) -> dict[str, Any]:
    response = httpx.get(f"{deployment.base_url}/v1/balances", headers=bearer(api_key))
    assert response.status_code == 200, response.text
    (found,) = [b for b in response.json()["data"] if b["currency"] == currency]
    return found  # type: ignore[no-any-return]


def test_hold_lifecycle_through_the_api(deployment: Deployment) -> None:
    _, key = deployment.tenant()
    deployment.deposit(key, "EUR", 10_000)
    base = deployment.base_url
    created = httpx.post(f"{base}/v1/holds", json=hold_body, headers=bearer(key)).json()
    assert (created["status"], created["amount"], created["reference"]) == (
        "pending",
        2_500,
        "order-42",
    )
    captured = httpx.post(
        f"{base}/v1/holds/{created['id']}/capture", json={"amount": 1_000}, headers=bearer(key)
    )
    assert captured.status_code == 200, captured.text
    assert (captured.json()["status"], captured.json()["captured_amount"]) == ("captured", 1_000)
    _problem(
        httpx.post(f"{base}/v1/holds/{created['id']}/void", json={}, headers=bearer(key)),
        409,
        "hold_already_captured",
    )
    again = httpx.post(
        f"{base}/v1/holds/{created['id']}/capture", json={"amount": 500}, headers=bearer(key)
    )
    assert "ledger transfer" not in _problem(again, 409, "hold_already_captured")["detail"]
    assert _balance(deployment, key, "EUR") == {
        "currency": "EUR",
        "available": 9_000,
        "pending": 0,
        "posted": 9_000,
    }
    short = httpx.post(
        f"{base}/v1/holds", json={"currency": "EUR", "amount": 9_001}, headers=bearer(key)
    )
    _problem(short, 422, "insufficient_funds")
    expiring = httpx.post(
        f"{base}/v1/holds", json={**hold_body, "timeout_seconds": 1}, headers=bearer(key)
    ).json()
    deadline = time.monotonic() + 15
    while _balance(deployment, key, "EUR")["pending"] != 0:
        assert time.monotonic() < deadline, "the hold never expired"
        time.sleep(0.2)
    assert (
        httpx.get(f"{base}/v1/holds/{expiring['id']}", headers=bearer(key)).json()["status"]
        == "expired"
    )
    _problem(
        httpx.post(f"{base}/v1/holds/{expiring['id']}/capture", json={}, headers=bearer(key)),
        409,
        "hold_expired",
    )


def test_validation_errors_name_the_field_and_change_nothing(deployment: Deployment) -> None:
    _, key = deployment.tenant()
    deployment.deposit(key, "EUR", 1_000)
    url = f"{deployment.base_url}/v1/holds"
    cases: list[tuple[bytes, int, str, str]] = [
        (b'{"currency": "EUR", "amount": "5"}', 422, "validation_error", "amount"),
        (b'{"currency": "EUR", "amount": 0}', 422, "validation_error", "amount"),
        (b'{"currency": "EUR", "amount": 5, "colour": "red"}', 422, "validation_error", "colour"),
        (b'{"amount": 5}', 422, "validation_error", "currency"),
        (b'{"currency": "EURO", "amount": 5}', 422, "validation_error", "currency"),
        (b'{"currency": "XYZ", "amount": 5}', 422, "unknown_currency", "currency"),
        (
            b'{"currency": "EUR", "amount": 5, "reference": "' + b"r" * 141 + b'"}',
            422,
            "validation_error",
            "reference",
        ),
        (
            b'{"currency": "EUR", "amount": 5, "timeout_seconds": -1}',
            422,
            "validation_error",
            "timeout_seconds",
        ),
    ]
    for body, status, code, field in cases:
        response = httpx.post(
            url, content=body, headers={**bearer(key), "content-type": "application/json"}
        )
        problem = _problem(response, status, code)
        assert [error["field"] for error in problem["errors"]] == [field], problem
    _problem(httpx.post(url, content=b"{not json", headers=bearer(key)), 400, "malformed_json")
    bad_key = httpx.post(url, json=hold_body, headers={**bearer(key), "Idempotency-Key": "k" * 256})
    assert _problem(bad_key, 422, "validation_error")["errors"][0]["field"] == "Idempotency-Key"
    # Query parameters are named the same way: one missing, one of the wrong type.
    statements = f"{deployment.base_url}/v1/statements"
    for params, field in (({}, "currency"), ({"currency": "EUR", "limit": "ten"}, "limit")):
        refused = httpx.get(statements, params=params, headers=bearer(key))
        problem = _problem(refused, 422, "validation_error")
        assert [error["field"] for error in problem["errors"]] == [field], problem
    assert _balance(deployment, key, "EUR") == {
        "currency": "EUR",
        "available": 1_000,
        "pending": 0,
        "posted": 1_000,
    }


def test_oversized_bodies_are_refused(deployment: Deployment) -> None:
    _, key = deployment.tenant()
    body = b'{"currency": "EUR", "amount": 5, "reference": "' + b"r" * 200_000 + b'"}'
    response = httpx.post(
        f"{deployment.base_url}/v1/holds",
        content=body,
        headers={**bearer(key), "content-type": "application/json"},
    )
    _problem(response, 413, "payload_too_large")


def test_oversized_bodies_sent_in_chunks_without_a_length_are_refused(
    deployment: Deployment,
) -> None:
    _, key = deployment.tenant()

    def chunks() -> Iterator[bytes]:
        yield b'{"currency": "EUR", "amount": 5, "reference": "'
        for _ in range(20):
            yield b"r" * 10_000
        yield b'"}'

    response = httpx.post(
        f"{deployment.base_url}/v1/holds",
        content=chunks(),
        headers={**bearer(key), "content-type": "application/json"},
    )
    assert "content-length" not in response.request.headers
    _problem(response, 413, "payload_too_large")
    assert _balance(deployment, key, "EUR")["pending"] == 0


def test_fifty_concurrent_identical_requests_have_exactly_one_effect(
    deployment: Deployment,
) -> None:
    _, key = deployment.tenant()
    deployment.deposit(key, "EUR", 100_000)
    headers = {**bearer(key), "Idempotency-Key": "same-request"}

    async def fire() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(
            base_url=deployment.base_url, limits=limits, timeout=30
        ) as client:
            return list(
                await asyncio.gather(
                    *(client.post("/v1/holds", json=hold_body, headers=headers) for _ in range(50))
                )
            )

    responses = asyncio.run(fire())
    assert {r.status_code for r in responses} == {201}
    assert len({r.content for r in responses}) == 1
    assert _balance(deployment, key, "EUR")["pending"] == 2_500
    other = httpx.post(
        f"{deployment.base_url}/v1/holds", json={**hold_body, "amount": 1}, headers=headers
    )
    _problem(other, 409, "idempotency_conflict")
    replay = httpx.post(f"{deployment.base_url}/v1/holds", json=hold_body, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.content == responses[0].content


def _limit_policy(deployment: Deployment, tenant_id: int, requests_per_minute: int) -> None:
    """A limit policy of its own for the tenant, through the admin API."""
    policy = f"rate-{tenant_id}"
    deployment.created(
        "/admin/v1/limit-policies",
        {
            "name": policy,
            "requests_per_minute": requests_per_minute,
            "daily_limit_usd_minor": 10**6,
        },
        deployment.admin(),
    )
    linked = httpx.put(
        f"{deployment.base_url}/admin/v1/tenants/{tenant_id}/policies",
        json={"pricing_policy": "starter", "limit_policy": policy},
        headers=deployment.admin(),
        timeout=30,
    )
    assert linked.status_code == 200, linked.text


def test_a_limit_policy_of_nothing_is_refused_naming_the_field(deployment: Deployment) -> None:
    """A daily limit of 0 was stored and then answered 500 when linked, leaving the rate
    limiter's copy of the tenant stale: it is refused where it arrives, and not stored."""
    policy = f"zero-{secrets.token_hex(4)}"
    refused = httpx.post(
        f"{deployment.base_url}/admin/v1/limit-policies",
        json={"name": policy, "requests_per_minute": 10, "daily_limit_usd_minor": 0},
        headers=deployment.admin(),
    )
    problem = _problem(refused, 422, "validation_error")
    assert [error["field"] for error in problem["errors"]] == ["daily_limit_usd_minor"]
    tenant_id, _ = deployment.tenant()
    linked = httpx.put(
        f"{deployment.base_url}/admin/v1/tenants/{tenant_id}/policies",
        json={"pricing_policy": "starter", "limit_policy": policy},
        headers=deployment.admin(),
    )
    unknown = _problem(linked, 422, "unknown_policy")
    assert unknown["errors"] == [
        {"field": "limit_policy", "message": f"no limit policy named {policy}"}
    ], unknown


def test_rate_limits_hold_across_workers(deployment: Deployment) -> None:
    """Two requests a minute admit exactly two of a burst spread over both workers: one
    limiter for the tenant, whichever worker answers. A refill takes 30 s, far longer than
    the burst, so the count does not depend on how fast the machine sends it."""
    tenant_id, key = deployment.tenant(tier="starter")
    _limit_policy(deployment, tenant_id, requests_per_minute=2)

    async def fire() -> list[httpx.Response]:
        # Separate clients open separate connections, which granian spreads over workers.
        clients = [httpx.AsyncClient(base_url=deployment.base_url, timeout=30) for _ in range(10)]
        try:
            return list(
                await asyncio.gather(
                    *(clients[i % 10].get("/v1/balances", headers=bearer(key)) for i in range(40))
                )
            )
        finally:
            await asyncio.gather(*(client.aclose() for client in clients))

    responses = asyncio.run(fire())
    statuses = [r.status_code for r in responses]
    assert (statuses.count(200), statuses.count(429)) == (2, 38)
    admitted = [r for r in responses if r.status_code == 200]
    assert sorted(r.headers["ratelimit-remaining"] for r in admitted) == ["0", "1"]
    limited = next(r for r in responses if r.status_code == 429)
    _problem(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.headers["ratelimit-limit"] == "2"
    assert limited.headers["ratelimit-remaining"] == "0"
    assert limited.headers["ratelimit-policy"] == "2;w=60"


def test_ops_endpoints(deployment: Deployment) -> None:
    base = deployment.base_url
    assert httpx.get(f"{base}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{base}/ready").json()
    assert ready["checks"] == {"tigerbeetle": "ok", "postgres": "ok", "redis": "ok"}
    metrics = httpx.get(f"{base}/metrics").text
    assert "kovra_http_request_duration_seconds_bucket" in metrics
    schema = httpx.get(f"{base}/schema/openapi.json").json()
    assert schema["paths"]["/v1/holds"]["post"]["requestBody"]["content"]["application/json"]
    assert "HoldCreate" in schema["components"]["schemas"]
