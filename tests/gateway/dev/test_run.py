"""`kovra dev` from a clean data directory: it migrates, seeds a demo tenant with money,
prints a working API key and curl example, serves on the port, and after a restart the
ledger (journaled under the data directory) has exactly the same balances. With the data
directory deleted but the database kept, it starts again on a fresh ledger and seeds the
same demo tenant's money anew."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests import redis_server
from tests.gateway.e2e.conftest import free_port, repository

startup_seconds_max = 90


def _start(
    environment: dict[str, str], port: int, log_path: Path
) -> tuple[subprocess.Popen[bytes], str]:
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "dev", "--port", str(port)],
            env=environment,
            cwd=repository,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + startup_seconds_max
    while time.monotonic() < deadline:
        found = re.search(r"API key \(shown once\): (kovra_sk_\S+)", log_path.read_text())
        if found:
            _wait_ready(port)
            return process, found.group(1)
        if process.poll() is not None:
            break
        time.sleep(0.2)
    process.kill()
    process.wait(timeout=10)
    raise AssertionError("kovra dev did not start:\n" + log_path.read_text())


def _wait_ready(port: int) -> None:
    deadline = time.monotonic() + startup_seconds_max
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("kovra dev never became ready")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _balances(port: int, key: str) -> dict[str, int]:
    response = httpx.get(
        f"http://127.0.0.1:{port}/v1/balances",
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return {b["currency"]: b["posted"] for b in response.json()["data"]}


def test_kovra_dev_seeds_serves_and_keeps_its_money(empty_database: str, tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("KOVRA_", "TB_"))}
    environment.update(
        {
            "DATABASE_URL": empty_database,
            "REDIS_URL": redis_server.redis_url(9),
            "KOVRA_DATA_DIR": str(tmp_path / "data"),
            "PYTHONPATH": str(repository),
        }
    )
    port = free_port()
    process, key = _start(environment, port, tmp_path / "first.log")
    try:
        first = _balances(port, key)
        assert first["EUR"] == 10_000_000
        hold = httpx.post(
            f"http://127.0.0.1:{port}/v1/holds",
            headers={"Authorization": f"Bearer {key}"},
            json={"currency": "EUR", "amount": 2_500},
            timeout=10,
        )
        assert hold.status_code == 201, hold.text
    finally:
        _stop(process)
    assert (tmp_path / "data" / "ledger.journal").stat().st_size > 0
    process, second_key = _start(environment, port, tmp_path / "second.log")
    try:
        assert second_key != key  # A fresh key each start; the old one still works too.
        assert _balances(port, second_key) == first
        assert _balances(port, key) == first
        pending = httpx.get(
            f"http://127.0.0.1:{port}/v1/balances", headers={"Authorization": f"Bearer {key}"}
        ).json()["data"]
        assert next(b for b in pending if b["currency"] == "EUR")["pending"] == 2_500
    finally:
        _stop(process)
    shutil.rmtree(tmp_path / "data")
    process, third_key = _start(environment, port, tmp_path / "third.log")
    try:
        assert _balances(port, third_key) == first  # Seeded anew; the hold went with the ledger.
        assert _balances(port, key) == first  # Postgres kept the tenant and its keys.
    finally:
        _stop(process)
