"""FX quotes end to end: priced with the tenant's tier margin on the sandbox rate table,
locked for ten minutes, readable only by their tenant, refused on stale rates, and
validated with the offending field named."""

from __future__ import annotations

import datetime

import httpx

from tests.gateway.e2e.conftest import Deployment, bearer


def _quote(deployment: Deployment, key: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(
        f"{deployment.base_url}/v1/quotes", json=body, headers=bearer(key), timeout=30
    )


def test_quotes_are_priced_locked_and_private(deployment: Deployment) -> None:
    _, key = deployment.tenant(tier="growth")  # 80 bps.
    _, stranger = deployment.tenant()
    created = _quote(
        deployment,
        key,
        {"source_currency": "EUR", "target_currency": "IDR", "source_amount": 100_000},
    )
    assert created.status_code == 201, created.text
    quote = created.json()
    assert quote["margin_bps"] == 80
    assert quote["status"] == "active"
    assert quote["fee"] == {"amount": 0, "currency": "EUR"}
    assert float(quote["rate"]) < float(quote["mid_rate"])
    assert quote["target_amount"] <= float(quote["rate"]) * 100_000
    lifetime = datetime.datetime.fromisoformat(
        quote["expires_at"]
    ) - datetime.datetime.fromisoformat(quote["created_at"])
    assert lifetime == datetime.timedelta(minutes=10)
    url = f"{deployment.base_url}/v1/quotes/{quote['id']}"
    assert httpx.get(url, headers=bearer(key)).json() == quote
    assert httpx.get(url, headers=bearer(stranger)).status_code == 404
    by_target = _quote(
        deployment,
        key,
        {"source_currency": "GBP", "target_currency": "EUR", "target_amount": 50_000},
    ).json()
    assert by_target["target_amount"] == 50_000
    assert by_target["source_amount"] > 0


def test_quote_requests_are_validated(deployment: Deployment) -> None:
    _, key = deployment.tenant()
    both = _quote(
        deployment,
        key,
        {
            "source_currency": "EUR",
            "target_currency": "IDR",
            "source_amount": 1,
            "target_amount": 1,
        },
    )
    assert both.status_code == 422
    assert both.json()["errors"][0]["field"] == "source_amount"
    unknown = _quote(
        deployment, key, {"source_currency": "EUR", "target_currency": "XYZ", "source_amount": 100}
    )
    assert unknown.status_code == 422
    assert unknown.json()["code"] == "unknown_currency"
    assert unknown.json()["errors"][0]["field"] == "target_currency"
    # An ISO currency this deployment does not enable, on the other side.
    disabled = _quote(
        deployment, key, {"source_currency": "JPY", "target_currency": "EUR", "source_amount": 100}
    )
    assert disabled.status_code == 422
    assert disabled.json()["code"] == "currency_not_enabled"
    assert disabled.json()["errors"][0]["field"] == "source_currency"


def test_idempotent_quotes_replay(deployment: Deployment) -> None:
    _, key = deployment.tenant()
    body = {"source_currency": "USD", "target_currency": "EUR", "source_amount": 5_000}
    headers = {**bearer(key), "Idempotency-Key": "quote-1"}
    first = httpx.post(f"{deployment.base_url}/v1/quotes", json=body, headers=headers)
    second = httpx.post(f"{deployment.base_url}/v1/quotes", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.content == second.content


def test_stale_rates_refuse_to_quote(deployment: Deployment) -> None:
    _, key = deployment.tenant()
    admin = deployment.admin()
    rates = f"{deployment.base_url}/admin/v1/fx-rates"
    old = httpx.put(
        rates,
        headers=admin,
        json={"rates": {"USD/SEK": "10.65"}, "observed_at": "2020-01-01T00:00:00Z"},
    )
    assert old.status_code == 200, old.text
    try:
        stale = _quote(
            deployment,
            key,
            {"source_currency": "SEK", "target_currency": "USD", "source_amount": 1_000},
        )
        assert stale.status_code == 503
        assert stale.json()["code"] == "rate_stale"
    finally:
        httpx.put(rates, headers=admin, json={"rates": {"USD/SEK": "10.65"}})
    fresh = _quote(
        deployment,
        key,
        {"source_currency": "SEK", "target_currency": "USD", "source_amount": 1_000},
    )
    assert fresh.status_code == 201, fresh.text
