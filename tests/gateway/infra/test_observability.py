"""Request latency: each request is observed under its method, route and status, whether its
histogram series was remembered or, past the bound on remembered series, looked up again.
Logs: each line is one JSON object with the request's context, and never fails on a value
JSON cannot hold; the standard library's records (the TigerBeetle client's, asyncpg's) come
out as JSON lines too, and the app leaves the root logger to that configuration rather than
Litestar's plain-text default."""

from __future__ import annotations

import datetime
import io
import json
import logging
import secrets
import sys

import pytest
import structlog
from prometheus_client import REGISTRY

from gateway.infra import observability


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


def test_log_lines_are_json_with_the_request_context(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A log line is one JSON object: the event, its level, an ISO timestamp, the request's
    bound context and its own fields; a value JSON cannot hold is written as its repr."""
    written = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(written))
    observability.configure_logging("info")
    try:
        structlog.contextvars.bind_contextvars(request_id="r" * 32, tenant_id=42)
        log = structlog.get_logger("kovra.test")
        log.info("request", route="/v1/transfers", status=201, duration_ms=1.25, what=object())
        log.debug("filtered out below info")
        log.warning("named", text="naïve café")
    finally:
        structlog.contextvars.clear_contextvars()
        structlog.reset_defaults()
    lines = written.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["event"] == "request"
    assert first["level"] == "info"
    assert first["request_id"] == "r" * 32
    assert first["tenant_id"] == 42
    assert (first["route"], first["status"], first["duration_ms"]) == ("/v1/transfers", 201, 1.25)
    assert first["what"].startswith("<object object at ")
    assert datetime.datetime.fromisoformat(first["timestamp"]).tzinfo is not None
    assert (second["level"], second["text"]) == ("warning", "naïve café")


def test_standard_library_records_are_json_lines_too(monkeypatch: pytest.MonkeyPatch) -> None:
    written = io.StringIO()
    monkeypatch.setattr(sys, "stdout", written)
    root = logging.getLogger()
    # As in a gateway or worker process: nothing has configured the root logger yet.
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", logging.WARNING)
    observability.configure_logging("info")
    try:
        logging.getLogger("tigerbeetle").info("(message_bus): on_connect: connected to=%d", 2)
        logging.getLogger("kovra.test").debug("filtered out below info")
        try:
            raise ValueError("broken")
        except ValueError:
            logging.getLogger("kovra.test").exception("failed")
    finally:
        structlog.reset_defaults()
    first, second = (json.loads(line) for line in written.getvalue().splitlines())
    assert first["event"] == "(message_bus): on_connect: connected to=2"
    assert (first["logger"], first["level"]) == ("tigerbeetle", "info")
    assert datetime.datetime.fromisoformat(first["timestamp"]).tzinfo is not None
    assert (second["event"], second["level"]) == ("failed", "error")
    assert "ValueError: broken" in second["exception"]


def test_the_app_leaves_logging_to_its_own_configuration() -> None:
    from gateway.app import create_app  # noqa: PLC0415 - the app is only built here.
    from gateway.settings import load_settings  # noqa: PLC0415

    app = create_app(load_settings({"KOVRA_ENV": "sandbox"}))
    assert app.logging_config is None
