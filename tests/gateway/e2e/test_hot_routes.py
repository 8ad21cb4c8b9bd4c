"""The hot routes (`gateway.http.hot_routes`) answer exactly as Litestar's handlers for the same
paths do. `POST /v1/quotes`, `/v1/transfers` and `/v1/holds` go to the hot route; the same
paths with a trailing slash go through Litestar's router to the handlers it documents. The
same requests, in pairs, against `kovra serve --workers 2`: successes, validation errors
naming the field, malformed JSON, oversized bodies, a frozen tenant, bad credentials,
idempotent replays and conflicts get the same status, problem code, content type and
headers (request id, rate limit, replay), and the metrics name each route by its path."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.gateway.e2e.conftest import Deployment, bearer

checked_headers = ("content-type", "idempotent-replayed", "www-authenticate")
rate_limit_headers = ("ratelimit-limit", "ratelimit-policy")


def _post(deployment: Deployment, path: str, body: Any, headers: dict[str, str]) -> httpx.Response:
    content = body if isinstance(body, bytes) else httpx.Request("POST", "/", json=body).content
    return httpx.post(
        f"{deployment.base_url}{path}",
        content=content,
        headers={"content-type": "application/json", **headers},
        timeout=30,
    )


def _both(
    deployment: Deployment, path: str, body: Any, headers: dict[str, str]
) -> tuple[httpx.Response, httpx.Response]:
    """The answer of the hot route, then of Litestar's handler, to the same request."""
    return _post(deployment, path, body, headers), _post(deployment, f"{path}/", body, headers)


def _same(
    hot: httpx.Response, litestar: httpx.Response, *, tenant_known: bool = True
) -> dict[str, Any]:
    """The two answers alike; the hot one's problem, or its body. A request refused before
    its tenant is known consumed no rate limit, so it carries no rate-limit headers."""
    assert hot.status_code == litestar.status_code, (hot.text, litestar.text)
    for name in checked_headers:
        assert hot.headers.get(name) == litestar.headers.get(name), name
    for name in (*(rate_limit_headers if tenant_known else ()), "x-request-id"):
        assert name in hot.headers, name
        assert (name in litestar.headers) is True, name
    if hot.headers["content-type"].startswith("application/problem+json"):
        hot_problem, litestar_problem = hot.json(), litestar.json()
        assert hot_problem["request_id"] == hot.headers["x-request-id"]
        for problem in (hot_problem, litestar_problem):
            problem.pop("request_id")
        assert hot_problem == litestar_problem
        return dict(hot_problem)
    return dict(hot.json())


@pytest.fixture(scope="module")
def tenant(deployment: Deployment) -> tuple[int, str]:
    deployment.fund_liquidity({"IDR": 10**16, "EUR": 10**12})
    tenant_id, key = deployment.tenant(name="hot")
    deployment.deposit(key, "EUR", 10_000_000)
    return tenant_id, key


def test_successes_are_alike(deployment: Deployment, tenant: tuple[int, str]) -> None:
    _, key = tenant
    quote = {"source_currency": "EUR", "target_currency": "IDR", "source_amount": 1_000}
    hot, litestar = _both(deployment, "/v1/quotes", quote, bearer(key))
    assert hot.status_code == 201
    assert set(_same(hot, litestar)) == set(litestar.json())
    hold = {"currency": "EUR", "amount": 100, "reference": "hot"}
    hot, litestar = _both(deployment, "/v1/holds", hold, bearer(key))
    assert hot.status_code == 201
    assert set(_same(hot, litestar)) == set(litestar.json())


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/v1/quotes", {"source_currency": "EUR", "target_currency": "IDR"}, 422, None),
        ("/v1/quotes", {"source_currency": "EUR", "extra": 1}, 422, "validation_error"),
        ("/v1/transfers", {"quote_id": 5}, 422, "validation_error"),
        ("/v1/transfers", b"{not json", 400, "malformed_json"),
        ("/v1/holds", {"currency": "EUR", "amount": -5}, 422, "validation_error"),
        ("/v1/holds", b"x" * 70_000, 413, "payload_too_large"),
        ("/v1/transfers", {"quote_id": "quote_0", "recipient_id": "rcp_0"}, 422, None),
    ],
)
def test_refusals_are_alike(
    deployment: Deployment,
    tenant: tuple[int, str],
    path: str,
    body: Any,
    status: int,
    code: str | None,
) -> None:
    hot, litestar = _both(deployment, path, body, bearer(tenant[1]))
    problem = _same(hot, litestar)
    assert hot.status_code == status, hot.text
    assert code is None or problem["code"] == code


def test_credentials_and_frozen_tenants_are_alike(deployment: Deployment) -> None:
    hot, litestar = _both(deployment, "/v1/holds", {}, bearer("kovra_sk_not-a-key"))
    assert _same(hot, litestar, tenant_known=False)["code"] == "unauthorized"
    assert "ratelimit-limit" not in hot.headers
    tenant_id, key = deployment.tenant(name="frozen-hot")
    frozen = httpx.put(
        f"{deployment.base_url}/admin/v1/tenants/{tenant_id}/status",
        headers=deployment.admin(),
        json={"status": "frozen"},
        timeout=30,
    )
    assert frozen.status_code == 200, frozen.text
    hold = {"currency": "EUR", "amount": 100}
    assert _same(*_both(deployment, "/v1/holds", hold, bearer(key)))["code"] == "tenant_frozen"
    transfer = {"quote_id": "quote_0", "recipient_id": "rcp_0", "reference": "x"}
    hot, litestar = _both(deployment, "/v1/transfers", transfer, bearer(key))
    assert _same(hot, litestar)["code"] == "tenant_frozen"


def test_idempotent_replays_and_conflicts_are_alike(
    deployment: Deployment, tenant: tuple[int, str]
) -> None:
    _, key = tenant
    hold = {"currency": "EUR", "amount": 200, "reference": "replayed"}
    answers = []
    for path in ("/v1/holds", "/v1/holds/"):
        headers = {**bearer(key), "Idempotency-Key": f"hot-{uuid.uuid4().hex}"}
        first = _post(deployment, path, hold, headers)
        again = _post(deployment, path, hold, headers)
        other = _post(deployment, path, {**hold, "amount": 201}, headers)
        assert first.status_code == 201, first.text
        assert again.json() == first.json()
        answers.append((first, again, other))
    (hot_first, hot_again, hot_other), (lit_first, lit_again, lit_other) = answers
    _same(hot_first, lit_first)
    _same(hot_again, lit_again)
    assert hot_again.headers["idempotent-replayed"] == "true"
    assert _same(hot_other, lit_other)["code"] == "idempotency_conflict"


def test_metrics_name_hot_routes_by_their_path(
    deployment: Deployment, tenant: tuple[int, str]
) -> None:
    _post(deployment, "/v1/holds", {"currency": "EUR", "amount": 1}, bearer(tenant[1]))
    _post(deployment, "/v1/transfers", {}, bearer("kovra_sk_not-a-key"))
    metrics = httpx.get(f"{deployment.base_url}/metrics", timeout=30).text
    assert 'method="POST",route="/v1/holds",status="201"' in metrics
    # Refused before routing, a request is still named by the route it asked for.
    assert 'method="POST",route="/v1/transfers",status="401"' in metrics
