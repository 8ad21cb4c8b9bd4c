"""Request latency: each request is observed under its method, route and status, whether its
histogram series was remembered or, past the bound on remembered series, looked up again."""

from __future__ import annotations

import secrets

import pytest
from prometheus_client import REGISTRY

from gateway import observability


def _count(method: str, route: str, status: int) -> float:
    value = REGISTRY.get_sample_value(
        "kovra_http_request_duration_seconds_count",
        {"method": method, "route": route, "status": str(status)},
    )
    return value or 0.0


def test_each_request_counts_in_its_own_series() -> None:
    route = f"/test/{secrets.token_hex(4)}"
    for _ in range(3):
        observability.observe_request(method="POST", route=route, status=201, seconds=0.01)
    observability.observe_request(method="POST", route=route, status=409, seconds=0.01)
    assert _count("POST", route, 201) == 3
    assert _count("POST", route, 409) == 1
    assert _count("GET", route, 201) == 0


def test_series_past_the_bound_are_still_observed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(observability, "request_latency_series_cached_max", 1)
    monkeypatch.setattr(observability, "_request_latency_series", {})
    first, second = (f"/test/{secrets.token_hex(4)}" for _ in range(2))
    for _ in range(2):
        observability.observe_request(method="GET", route=first, status=200, seconds=0.01)
        observability.observe_request(method="GET", route=second, status=200, seconds=0.01)
    assert _count("GET", first, 200) == 2
    assert _count("GET", second, 200) == 2
    assert list(observability._request_latency_series) == [("GET", first, 200)]
