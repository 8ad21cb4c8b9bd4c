"""The bare echo endpoint that the gateway benchmark compares against answers what it gets,
and refuses what the gateway would refuse to parse."""

from __future__ import annotations

from litestar.testing import TestClient

from loadtest.echo import create_echo_app


def test_echo_returns_the_body() -> None:
    with TestClient(create_echo_app(tune_collector=False)) as client:
        response = client.post("/echo", content=b'{"currency": "EUR", "amount": 5}')
        assert response.status_code == 201
        assert response.json() == {"currency": "EUR", "amount": 5, "reference": None}
