"""`python -m loadtest.bench_gateway`: POST /v1/holds against a bare echo endpoint, one run.

Starts Postgres-backed Kovra (`kovra serve`, granian + uvloop) and the bare msgspec echo app
(`loadtest.echo`) with the same server settings, drives both with the same wrk load
(connections, threads, duration) and prints holds/s and latency p50/p95 of each and the
ratio. Setup goes through the admin API: a tenant whose limit policy does not throttle the
run, a deposit large enough for every hold. Needs `wrk` (Debian package) and the local
Postgres and Redis; with TB_ADDRESSES the ledger is a real cluster, with --workers > 1 and no
cluster the shared embedded ledger server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx
import msgspec
import redis

from gateway.http.ratelimit import requests_per_minute_max
from loadtest import services_cpu
from loadtest.cpu import per_request_ms, tree_cpu_seconds

repository = Path(__file__).resolve().parents[1]
admin_token = "bench-admin-" + secrets.token_hex(24)
# No test or other tool uses this database; `bench_environment` empties it.
bench_redis_url_default = "redis://127.0.0.1:6379/15"
startup_timeout_seconds = 60
hold_body = b'{"currency": "EUR", "amount": 1, "reference": "bench"}'
# Lua for wrk: POST with the bearer key, and a summary line of JSON that `run_script` reads.
wrk_headers = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer KEY"
"""
# A script that counts its 201 responses keeps them in each thread's global `created` and
# lists its threads in `counted_threads` (filled by its `setup`); the summary adds them up.
wrk_summary = """
done = function(summary, latency, requests)
  local created = "null"
  if counted_threads then
    local total = 0
    for _, thread in ipairs(counted_threads) do total = total + (thread:get("created") or 0) end
    created = tostring(total)
  end
  io.write(string.format(
    '{"requests": %d, "seconds": %f, "non_2xx": %d, "socket_errors": %d, '
    .. '"p50_ms": %f, "p95_ms": %f, "p99_ms": %f, "created": %s}\\n',
    summary.requests, summary.duration / 1e6, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, created))
end
"""
wrk_script = wrk_headers + "wrk.body = [[BODY]]\n" + wrk_summary


class LoadResult(msgspec.Struct, frozen=True, kw_only=True):
    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    # Responses 201 Created, when the script counts them (`wrk_summary`); None otherwise.
    created: int | None = None
    # The server's CPU (its whole process tree) per request, in ms; None when not measured.
    server_cpu_ms: float | None = None
    # The same for each local service the run was given (`loadtest.services_cpu`).
    services_cpu_ms: dict[str, float] = msgspec.field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + startup_timeout_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} never answered")


@contextmanager
def _process(command: list[str], environment: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        command,
        env=environment,
        cwd=repository,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def run_wrk(
    url: str,
    *,
    api_key: str,
    connections: int,
    threads: int,
    seconds: int,
    directory: Path,
    server_pid: int,
) -> LoadResult:
    script = directory / "post.lua"
    script.write_text(wrk_script.replace("BODY", hold_body.decode()).replace("KEY", api_key))
    return run_script(
        str(script),
        url,
        connections=connections,
        threads=threads,
        seconds=seconds,
        server_pid=server_pid,
    )


def run_script(
    script: str,
    url: str,
    *,
    connections: int,
    threads: int,
    seconds: int,
    server_pid: int,
    service_pids: Mapping[str, int] | None = None,
) -> LoadResult:
    """Run wrk with a Lua script that ends in `wrk_summary`; its figures, with the CPU
    that `server_pid` and its descendants spent per request meanwhile, and each of
    `service_pids` (name to pid) likewise."""
    services_before = services_cpu.cpu_seconds(service_pids or {})
    cpu_before = tree_cpu_seconds(server_pid)
    result = _wrk(script, url, connections=connections, threads=threads, seconds=seconds)
    spent = tree_cpu_seconds(server_pid) - cpu_before
    services_after = services_cpu.cpu_seconds(service_pids or {})
    return msgspec.structs.replace(
        result,
        server_cpu_ms=per_request_ms(spent, result.requests),
        services_cpu_ms=services_cpu.per_request_ms(
            services_before, services_after, result.requests
        ),
    )


def _wrk(script: str, url: str, *, connections: int, threads: int, seconds: int) -> LoadResult:
    output = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", script, url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    line = next(line for line in output.splitlines() if line.startswith("{"))
    return msgspec.json.decode(line, type=LoadResult)


def _granian(target: str, port: int, workers: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "asgi",
        "--loop",
        "uvloop",
        "--factory",
        "--workers",
        str(workers),
        "--port",
        str(port),
        "--no-access-log",
        target,
    ]


def unthrottled_tenant(
    base: str, *, deposits: dict[str, int], liquidity: dict[str, int] | None = None
) -> str:
    """`provision_unthrottled_tenant` against the server at `base`."""

    async def provision() -> str:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            return await provision_unthrottled_tenant(
                client, deposits=deposits, liquidity=liquidity
            )

    return asyncio.run(provision())


async def provision_unthrottled_tenant(
    client: httpx.AsyncClient,
    *,
    deposits: dict[str, int],
    liquidity: dict[str, int] | None = None,
) -> str:
    """A new tenant whose limit policy does not throttle a benchmark (the most requests a
    policy may allow, a daily limit no run reaches), with `deposits` in its wallet and
    `liquidity` funded for the platform; its API key. Through the admin API only, with
    `client` (a server's base URL, or an app in this process: `loadtest.profile_transfers`)."""
    admin = {"Authorization": f"Bearer {admin_token}"}
    policy = f"bench-{secrets.token_hex(4)}"
    (
        await client.post(
            "/admin/v1/limit-policies",
            headers=admin,
            json={
                "name": policy,
                "requests_per_minute": requests_per_minute_max,
                "daily_limit_usd_minor": 10**15,
            },
        )
    ).raise_for_status()
    for currency, amount in (liquidity or {}).items():
        (
            await client.post(
                "/admin/v1/liquidity", headers=admin, json={"currency": currency, "amount": amount}
            )
        ).raise_for_status()
    created = await client.post(
        "/admin/v1/tenants", headers=admin, json={"name": "bench", "tier": "enterprise"}
    )
    created.raise_for_status()
    tenant_id, api_key = created.json()["tenant_id"], created.json()["api_key"]
    (
        await client.put(
            f"/admin/v1/tenants/{tenant_id}/policies",
            headers=admin,
            json={"pricing_policy": "enterprise", "limit_policy": policy},
        )
    ).raise_for_status()
    for currency, amount in deposits.items():
        (
            await client.post(
                "/v1/deposits",
                headers={"Authorization": f"Bearer {api_key}"},
                json={"currency": currency, "amount": amount},
            )
        ).raise_for_status()
    return str(api_key)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="kovra-bench-") as folder:
        directory = Path(folder)
        results = _run(arguments, directory)
    ratio = results["gateway"].per_second / results["echo"].per_second
    if arguments.json:
        print(
            json.dumps(
                {
                    name: {**msgspec.to_builtins(r), "per_second": r.per_second}
                    for name, r in results.items()
                }
                | {"ratio": ratio}
            )
        )
        return
    for name, result in results.items():
        print(
            f"{name:<8} {result.per_second:>9,.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
            f"p95 {result.p95_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  "
            f"non-2xx {result.non_2xx}  socket errors {result.socket_errors}  "
            f"server CPU {result.server_cpu_ms or 0:.3f} ms/request"
        )
    print(
        f"ratio gateway/echo: {ratio:.2f} ({arguments.workers} worker(s), "
        f"{arguments.connections} connections, {arguments.threads} wrk threads, "
        f"{arguments.seconds} s, {os.cpu_count()} cores)"
    )


def _run(arguments: argparse.Namespace, directory: Path) -> dict[str, LoadResult]:
    with bench_environment(directory) as environment:
        return _measure(arguments, directory, environment)


@contextmanager
def bench_environment(directory: Path) -> Iterator[dict[str, str]]:
    """Kovra's environment on a fresh, migrated database, dropped afterwards, and an empty
    Redis database, emptied again afterwards.

    The Redis database (`KOVRA_BENCH_REDIS_URL`, database 15 by default) belongs to the
    benchmarks: a run leaves every quote it priced there for a day (`fx.quotes`), and one
    session's runs once left 7 million records and 6 GB for the next run to work beside."""
    admin_url = os.environ.get(
        "KOVRA_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    database = f"kovra_bench_{secrets.token_hex(4)}"
    redis_url = os.environ.get("KOVRA_BENCH_REDIS_URL", bench_redis_url_default)
    environment = {
        **os.environ,
        "DATABASE_URL": admin_url.rsplit("/", 1)[0] + f"/{database}",
        "KOVRA_ADMIN_TOKEN": admin_token,
        "REDIS_URL": redis_url,
        "KOVRA_DATA_DIR": str(directory / "data"),
        "KOVRA_LOG_LEVEL": "warning",
        "PYTHONPATH": str(repository),
    }
    asyncio.run(_sql(admin_url, f'CREATE DATABASE "{database}"'))
    try:
        _empty_redis(redis_url)
        subprocess.run(
            [sys.executable, "-m", "gateway.cli", "migrate"],
            env=environment,
            check=True,
            cwd=repository,
        )
        yield environment
    finally:
        asyncio.run(_sql(admin_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        _empty_redis(redis_url)


def _empty_redis(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


async def _sql(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _measure(
    arguments: argparse.Namespace, directory: Path, environment: dict[str, str]
) -> dict[str, LoadResult]:
    load = {
        "connections": arguments.connections,
        "threads": arguments.threads,
        "seconds": arguments.seconds,
        "directory": directory,
    }
    results: dict[str, LoadResult] = {}
    echo_port = _free_port()
    with _process(
        _granian("loadtest.echo:create_echo_app", echo_port, arguments.workers), environment
    ) as echo:
        _wait_healthy(f"http://127.0.0.1:{echo_port}/echo", echo)
        results["echo"] = run_wrk(
            f"http://127.0.0.1:{echo_port}/echo", api_key="none", server_pid=echo.pid, **load
        )
    with _ledger(arguments.workers, environment, directory):
        port = _free_port()
        with _process(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "serve",
                "--port",
                str(port),
                "--workers",
                str(arguments.workers),
            ],
            environment,
        ) as gateway:
            base = f"http://127.0.0.1:{port}"
            _wait_healthy(f"{base}/health", gateway)
            api_key = unthrottled_tenant(base, deposits={"EUR": 10**15})
            results["gateway"] = run_wrk(
                f"{base}/v1/holds", api_key=api_key, server_pid=gateway.pid, **load
            )
    return results


def ledger_server_command(port: int, directory: Path) -> list[str]:
    """`kovra ledger-server` on 127.0.0.1:`port`, journaling in `directory`."""
    return [
        sys.executable,
        "-m",
        "gateway.cli",
        "ledger-server",
        "--address",
        f"127.0.0.1:{port}",
        "--journal",
        str(directory / "ledger.journal"),
    ]


@contextmanager
def _ledger(workers: int, environment: dict[str, str], directory: Path) -> Iterator[None]:
    """One worker keeps the embedded ledger in its own process; several share one."""
    if workers == 1:
        yield
        return
    with shared_ledger(environment, directory):
        yield


@contextmanager
def shared_ledger(environment: dict[str, str], directory: Path) -> Iterator[int | None]:
    """The ledger that several processes share: the TigerBeetle cluster of `TB_ADDRESSES`
    when it is set (yields None), else a `kovra ledger-server` whose address goes into
    `environment` (yields its pid) once it accepts connections."""
    if environment.get("TB_ADDRESSES"):
        yield None
        return
    port = _free_port()
    with _process(ledger_server_command(port, directory), environment) as server:
        _wait_listening(port, server)
        environment["KOVRA_LEDGER_ADDRESS"] = f"127.0.0.1:{port}"
        yield server.pid


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    """Until 127.0.0.1:`port` accepts a connection; a server that exits or never listens
    within `startup_timeout_seconds` is an error, not a wait without end."""
    deadline = time.monotonic() + startup_timeout_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"127.0.0.1:{port}: server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"127.0.0.1:{port} never accepted a connection")


if __name__ == "__main__":
    main()
