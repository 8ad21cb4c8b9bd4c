"""`locust -f loadtest/locustfile.py` against a real Kovra (`kovra serve --workers 2`,
`kovra worker`): setup through the admin API reaches every worker process of
`--processes 2`, the payment, hold and balance mix succeeds with no failed request and is
written to the CSV and HTML reports, and a missed threshold makes locust exit non-zero
with the reason printed."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from tests.gateway.e2e.conftest import Deployment, admin_token, repository

locustfile = repository / "loadtest" / "locustfile.py"
# A bound on a hung run, not a speed target: the suite runs two modules at once on two cores.
run_timeout_seconds = 240
# Thresholds any working deployment meets on a shared two-core machine.
lenient_thresholds = {
    "KOVRA_LOCUST_RPS_MIN": "1",
    "KOVRA_LOCUST_P50_MS_MAX": "10000",
    "KOVRA_LOCUST_P95_MS_MAX": "10000",
    "KOVRA_LOCUST_ERROR_RATE_MAX": "0",
}


def run_locust(
    deployment: Deployment, tmp_path: Path, *options: str, **variables: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("KOVRA_")}
    environment |= {"KOVRA_ADMIN_TOKEN": admin_token, "KOVRA_LOCUST_TENANTS": "2"}
    environment |= lenient_thresholds | variables
    prefix = tmp_path / "run"
    finished = subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(locustfile),
            "--headless",
            "--host",
            deployment.base_url,
            "--csv",
            str(prefix),
            "--html",
            str(tmp_path / "report.html"),
            "--only-summary",
            *options,
        ],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=run_timeout_seconds,
        check=False,
    )
    return finished, prefix


def stats_by_name(prefix: Path) -> dict[str, dict[str, str]]:
    with Path(f"{prefix}_stats.csv").open(newline="") as report:
        return {row["Name"]: row for row in csv.DictReader(report)}


def test_the_mix_succeeds_across_processes(deployment: Deployment, tmp_path: Path) -> None:
    finished, prefix = run_locust(
        deployment, tmp_path, "--processes", "2", "-u", "4", "-r", "4", "-t", "5s"
    )
    output = finished.stdout + finished.stderr
    assert finished.returncode == 0, output
    assert "thresholds met" in output
    stats = stats_by_name(prefix)
    for name in ("/v1/quotes", "/v1/transfers", "/v1/holds", "/v1/balances"):
        assert int(stats[name]["Request Count"]) > 0, (name, stats)
        assert stats[name]["Failure Count"] == "0", (name, stats)
    assert stats["Aggregated"]["Failure Count"] == "0"
    assert int(stats["/v1/transfers"]["Request Count"]) <= int(stats["/v1/quotes"]["Request Count"])
    assert (tmp_path / "report.html").stat().st_size > 0


def test_a_missed_threshold_fails_the_run(deployment: Deployment, tmp_path: Path) -> None:
    finished, prefix = run_locust(
        deployment,
        tmp_path,
        "-u",
        "2",
        "-r",
        "2",
        "-t",
        "3s",
        KOVRA_LOCUST_P95_MS_MAX="0.001",
    )
    output = finished.stdout + finished.stderr
    assert finished.returncode == 1, output
    assert "threshold missed: transfer latency p95" in output
    assert "KOVRA_LOCUST_P95_MS_MAX=0.001" in output
    assert int(stats_by_name(prefix)["/v1/transfers"]["Request Count"]) > 0


def test_a_failed_setup_stops_before_the_run(deployment: Deployment, tmp_path: Path) -> None:
    finished, _ = run_locust(
        deployment,
        tmp_path,
        "--processes",
        "2",
        "-u",
        "1",
        "-t",
        "30s",
        KOVRA_ADMIN_TOKEN="not-the-admin-token-" + "z" * 20,
    )
    output = finished.stdout + finished.stderr
    assert finished.returncode == 2, output
    assert "setup failed: POST /admin/v1/limit-policies answered 401" in output
