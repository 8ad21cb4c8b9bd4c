"""The webhook benchmark runs as documented: with several delivery worker processes sharing
one database, every delivery is made and recorded delivered, and the figure it prints names
how many workers made it; an endpoint's in-flight bound and a receiver's delay are set and
named; a worker count or a bound past its limit is refused."""

from __future__ import annotations

import re

import pytest

from gateway.webhooks.records.endpoints import in_flight_max_ceiling
from loadtest import bench_webhooks


def test_two_worker_processes_deliver_everything(capsys: pytest.CaptureFixture[str]) -> None:
    bench_webhooks.main(["--events", "25", "--endpoints", "2", "--workers", "2"])
    printed = capsys.readouterr().out
    assert re.search(
        r"^50 deliveries \(25 events x 2 endpoints\) in [0-9.]+ s: [0-9,]+/s "
        r"\(2 worker process\(es\)",
        printed,
        re.MULTILINE,
    ), printed


def test_worker_count_is_bounded() -> None:
    with pytest.raises(SystemExit):
        bench_webhooks.main(["--workers", str(bench_webhooks.workers_max + 1)])


def test_the_bound_and_the_receivers_delay_are_set_and_named(
    capsys: pytest.CaptureFixture[str],
) -> None:
    arguments = ["--events", "20", "--endpoints", "1", "--in-flight-max", "16"]
    bench_webhooks.main([*arguments, "--receiver-delay-ms", "20"])
    printed = capsys.readouterr().out
    assert re.search(
        r"^20 deliveries \(20 events x 1 endpoints\) in [0-9.]+ s: [0-9,]+/s \(1 worker "
        r"process\(es\), in_flight_max 16, receivers answering after 20 ms",
        printed,
        re.MULTILINE,
    ), printed


def test_a_bound_past_the_ceiling_is_refused() -> None:
    with pytest.raises(SystemExit):
        bench_webhooks.main(["--in-flight-max", str(in_flight_max_ceiling + 1)])
