"""The webhook benchmark runs as documented: with several delivery worker processes sharing
one database, every delivery is made and recorded delivered, and the figure it prints names
how many workers made it; a worker count past its bound is refused."""

from __future__ import annotations

import re

import pytest

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
