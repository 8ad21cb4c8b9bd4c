"""The load test's verdict: thresholds default to the SPEC §9 goals, a bad variable is
refused by name, and each missed threshold gives its own sentence with figure and limit."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from loadtest.thresholds import (
    RunFigures,
    Thresholds,
    ThresholdsError,
    missed_thresholds,
    thresholds_from_environment,
)

goals = Thresholds(
    transfers_per_second_min=5_000,
    latency_ms_p50_max=15,
    latency_ms_p95_max=50,
    error_rate_max=0.005,
)


measured = RunFigures(
    transfers_requested=60_000,
    transfers_succeeded=60_000,
    elapsed_seconds=10.0,
    transfer_latency_ms_p50=9.0,
    transfer_latency_ms_p95=31.0,
    requests=200_000,
    failures=0,
    locustfile_errors=0,
)


def figures(**changes: Any) -> RunFigures:
    return msgspec.structs.replace(measured, **changes)


def test_defaults_are_the_spec_goals() -> None:
    assert thresholds_from_environment({}) == goals


def test_each_variable_sets_its_threshold() -> None:
    assert thresholds_from_environment(
        {
            "KOVRA_LOCUST_RPS_MIN": "10",
            "KOVRA_LOCUST_P50_MS_MAX": "100",
            "KOVRA_LOCUST_P95_MS_MAX": "250.5",
            "KOVRA_LOCUST_ERROR_RATE_MAX": "0",
        }
    ) == Thresholds(
        transfers_per_second_min=10,
        latency_ms_p50_max=100,
        latency_ms_p95_max=250.5,
        error_rate_max=0,
    )


def test_bad_values_are_named_together() -> None:
    with pytest.raises(ThresholdsError) as raised:
        thresholds_from_environment(
            {"KOVRA_LOCUST_RPS_MIN": "fast", "KOVRA_LOCUST_ERROR_RATE_MAX": "1.5"}
        )
    message = str(raised.value)
    assert "KOVRA_LOCUST_RPS_MIN must be a number, got 'fast'" in message
    assert "KOVRA_LOCUST_ERROR_RATE_MAX must be between 0 and 1.0, got 1.5" in message


def test_a_run_meeting_every_goal_misses_nothing() -> None:
    assert missed_thresholds(figures(), goals) == []


def test_each_missed_threshold_is_said_with_its_figure() -> None:
    missed = missed_thresholds(
        figures(
            transfers_succeeded=40_000,
            transfer_latency_ms_p50=16.0,
            transfer_latency_ms_p95=51.0,
            failures=1_001,
        ),
        goals,
    )
    assert missed == [
        "throughput 4,000.0 successful transfers/s is below KOVRA_LOCUST_RPS_MIN=5000",
        "transfer latency p50 16 ms is above KOVRA_LOCUST_P50_MS_MAX=15",
        "transfer latency p95 51 ms is above KOVRA_LOCUST_P95_MS_MAX=50",
        "error rate 0.5005% (1001 of 200000 requests) is above KOVRA_LOCUST_ERROR_RATE_MAX=0.005",
    ]


def test_failed_transfers_do_not_count_as_throughput() -> None:
    missed = missed_thresholds(figures(transfers_succeeded=49_999, failures=10_001), goals)
    assert missed[0].startswith("throughput 4,999.9 successful transfers/s")


def test_an_empty_run_fails_every_threshold() -> None:
    empty = figures(
        transfers_requested=0,
        transfers_succeeded=0,
        elapsed_seconds=0.0,
        transfer_latency_ms_p50=None,
        transfer_latency_ms_p95=None,
        requests=0,
    )
    assert missed_thresholds(empty, goals) == [
        "throughput 0.0 successful transfers/s is below KOVRA_LOCUST_RPS_MIN=5000",
        "transfer latency p50: no transfer was requested",
        "transfer latency p95: no transfer was requested",
        "error rate: no request was made",
    ]


def test_errors_in_the_locustfile_fail_the_run() -> None:
    assert missed_thresholds(figures(locustfile_errors=2), goals) == [
        "2 unexpected error(s) in the locustfile itself (see the error report above)"
    ]
