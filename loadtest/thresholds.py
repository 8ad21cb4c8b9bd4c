"""The pass/fail thresholds of a load run, read from the environment, and their verdict.

A load test that only prints figures lets a regression through: these thresholds turn the
SPEC §9 goals (5,000 transfers/s, p50 < 15 ms, p95 < 50 ms, more than 99.5% success) into
an exit code. The module knows nothing of locust so that the verdict can be tested alone;
the locustfile turns locust's statistics into `RunFigures`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import msgspec

transfers_per_second_min_variable = "KOVRA_LOCUST_RPS_MIN"
latency_ms_p50_max_variable = "KOVRA_LOCUST_P50_MS_MAX"
latency_ms_p95_max_variable = "KOVRA_LOCUST_P95_MS_MAX"
error_rate_max_variable = "KOVRA_LOCUST_ERROR_RATE_MAX"
# The SPEC §9 goals.
transfers_per_second_min_default = 5_000.0
latency_ms_p50_max_default = 15.0
latency_ms_p95_max_default = 50.0
error_rate_max_default = 0.005


class ThresholdsError(ValueError):
    """A threshold variable is invalid; the message names each one."""


class Thresholds(msgspec.Struct, frozen=True, kw_only=True):
    transfers_per_second_min: float
    latency_ms_p50_max: float
    latency_ms_p95_max: float
    error_rate_max: float


class RunFigures(msgspec.Struct, frozen=True, kw_only=True):
    """What a run measured; latencies are None when no transfer was requested."""

    transfers_requested: int
    transfers_succeeded: int
    elapsed_seconds: float
    transfer_latency_ms_p50: float | None
    transfer_latency_ms_p95: float | None
    requests: int
    failures: int
    locustfile_errors: int

    @property
    def transfers_per_second(self) -> float:
        if self.elapsed_seconds <= 0:
            return 0.0
        return self.transfers_succeeded / self.elapsed_seconds

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


def thresholds_from_environment(environ: Mapping[str, str] | None = None) -> Thresholds:
    """The thresholds set by the environment, the SPEC §9 goals for those left unset."""
    source = os.environ if environ is None else environ
    problems: list[str] = []

    def number(name: str, default: float, *, high: float = math.inf) -> float:
        raw = source.get(name, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            problems.append(f"{name} must be a number, got {raw!r}")
            return default
        if not 0 <= value <= high:
            problems.append(f"{name} must be between 0 and {high}, got {raw}")
        return value

    thresholds = Thresholds(
        transfers_per_second_min=number(
            transfers_per_second_min_variable, transfers_per_second_min_default
        ),
        latency_ms_p50_max=number(latency_ms_p50_max_variable, latency_ms_p50_max_default),
        latency_ms_p95_max=number(latency_ms_p95_max_variable, latency_ms_p95_max_default),
        error_rate_max=number(error_rate_max_variable, error_rate_max_default, high=1.0),
    )
    if problems:
        raise ThresholdsError("invalid load-test thresholds:\n  " + "\n  ".join(problems))
    return thresholds


def missed_thresholds(figures: RunFigures, thresholds: Thresholds) -> list[str]:
    """One sentence per missed threshold, naming the figure, the limit and its variable."""
    missed: list[str] = []
    if figures.locustfile_errors:
        missed.append(
            f"{figures.locustfile_errors} unexpected error(s) in the locustfile itself "
            "(see the error report above)"
        )
    if figures.transfers_per_second < thresholds.transfers_per_second_min:
        missed.append(
            f"throughput {figures.transfers_per_second:,.1f} successful transfers/s is below "
            f"{transfers_per_second_min_variable}={thresholds.transfers_per_second_min:g}"
        )
    for label, value, limit, variable in (
        (
            "p50",
            figures.transfer_latency_ms_p50,
            thresholds.latency_ms_p50_max,
            latency_ms_p50_max_variable,
        ),
        (
            "p95",
            figures.transfer_latency_ms_p95,
            thresholds.latency_ms_p95_max,
            latency_ms_p95_max_variable,
        ),
    ):
        if value is None:
            missed.append(f"transfer latency {label}: no transfer was requested")
        elif value > limit:
            missed.append(f"transfer latency {label} {value:g} ms is above {variable}={limit:g}")
    if figures.requests == 0:
        missed.append("error rate: no request was made")
    elif figures.error_rate > thresholds.error_rate_max:
        missed.append(
            f"error rate {figures.error_rate:.4%} ({figures.failures} of {figures.requests} "
            f"requests) is above {error_rate_max_variable}={thresholds.error_rate_max:g}"
        )
    return missed
