"""Logs and metrics: JSON logs with request and tenant ids, Prometheus metrics across workers.

Metrics use prometheus-client's multiprocess mode when `PROMETHEUS_MULTIPROC_DIR` is set
(`kovra serve` sets it for its workers), so `/metrics` on any worker reports every worker.
"""

from __future__ import annotations

import datetime
import logging
import os
import sys
from collections.abc import MutableMapping
from typing import Any

import msgspec
import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess

latency_buckets_seconds = (
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
batch_size_buckets = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 8189)

request_latency_seconds = Histogram(
    "kovra_http_request_duration_seconds",
    "HTTP request latency by route and status",
    ["method", "route", "status"],
    buckets=latency_buckets_seconds,
)
# The (method, route, status) series whose histogram child is kept: `labels()` validates and
# locks on every call, and every request observes one. A client can send any method, so
# the memo is bounded; past it, requests take `labels()` as before.
request_latency_series_cached_max = 1_024
_request_latency_series: dict[tuple[str, str, int], Histogram] = {}


def observe_request(*, method: str, route: str, status: int, seconds: float) -> None:
    """Record one request's latency under its method, route template and status."""
    key = (method, route, status)
    series = _request_latency_series.get(key)
    if series is None:
        series = request_latency_seconds.labels(method=method, route=route, status=str(status))
        if len(_request_latency_series) < request_latency_series_cached_max:
            _request_latency_series[key] = series
    series.observe(seconds)


ledger_request_seconds = Histogram(
    "kovra_ledger_request_duration_seconds",
    "Ledger request latency by operation",
    ["operation"],
    buckets=latency_buckets_seconds,
)
ledger_batch_size = Histogram(
    "kovra_ledger_batch_size",
    "Events per ledger request",
    ["operation"],
    buckets=batch_size_buckets,
)
rate_limited_total = Counter(
    "kovra_rate_limited_total", "Requests refused by the per-tenant rate limit"
)
problems_total = Counter("kovra_problems_total", "Problem responses by code", ["code"])
webhook_attempts_total = Counter(
    "kovra_webhook_attempts_total", "Webhook delivery attempts by outcome", ["outcome"]
)
webhook_attempt_seconds = Histogram(
    "kovra_webhook_attempt_duration_seconds",
    "Webhook delivery attempt latency, by outcome",
    ["outcome"],
    buckets=(*latency_buckets_seconds, 5.0, 10.0, 30.0),
)
webhook_dead_letters_total = Counter(
    "kovra_webhook_dead_letters_total", "Webhook deliveries dead-lettered after the last retry"
)
retention_deleted_total = Counter(
    "kovra_retention_deleted_total",
    "Rows deleted after their retention, by table (attempts go with their deliveries)",
    ["table"],
)
webhook_queue_depth = Gauge(
    "kovra_webhook_queue_depth",
    "Webhook attempts due and not yet claimed",
    multiprocess_mode="max",
)
webhook_in_flight = Gauge(
    "kovra_webhook_in_flight",
    "Webhook attempts being sent by this worker",
    multiprocess_mode="livesum",
)


# A value JSON has no form for (an exception, an object someone logged) is written as its
# repr, never refused: a log call must not fail the request it describes.
_log_line_encoder = msgspec.json.Encoder(enc_hook=repr)


def render_json_line(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> bytes:
    """The event as one line of JSON. msgspec writes it in about half the time of the
    standard library's encoder, and at `info` every request logs a line."""
    return _log_line_encoder.encode(event)


class JsonLineFormatter(logging.Formatter):
    """A standard-library record (the TigerBeetle client's connection messages, asyncpg's,
    the few modules of ours that use `logging`) as the same kind of JSON line structlog
    writes, so that whatever reads the log reads one format."""

    def format(self, record: logging.LogRecord) -> str:
        timestamp = datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC)
        line: dict[str, Any] = {
            "event": record.getMessage(),
            "logger": record.name,
            "level": record.levelname.lower(),
            "timestamp": timestamp.isoformat().replace("+00:00", "Z"),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return _log_line_encoder.encode(line).decode()


def configure_logging(level: str) -> None:
    """JSON lines on stdout; request_id and tenant_id come from structlog's contextvars.
    The standard library's records go to stdout as JSON lines too, unless the root logger
    already has handlers (a test runner's)."""
    stdout = logging.StreamHandler(sys.stdout)
    stdout.setFormatter(JsonLineFormatter())
    logging.basicConfig(handlers=[stdout], level=level.upper())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            render_json_line,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.BytesLoggerFactory(),
        cache_logger_on_first_use=True,
    )


# The media type `/metrics` answers in, as the OpenAPI document declares it. Litestar adds
# `; charset=utf-8` to every text/ type itself, so it is left out here: given the whole of
# prometheus_client's type, the answer said its charset twice.
metrics_content_type: str = CONTENT_TYPE_LATEST.removesuffix("; charset=utf-8")


def render_metrics() -> tuple[bytes, str]:
    """The exposition text of every worker (multiprocess) or of this process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), metrics_content_type
    return generate_latest(), metrics_content_type
