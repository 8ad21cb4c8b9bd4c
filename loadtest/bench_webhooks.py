"""`python -m loadtest.bench_webhooks`: how fast `kovra worker` delivers signed webhooks.

On a fresh, migrated database it creates a tenant with `--endpoints` endpoints, each a
`loadtest.sink` process on this machine, writes `--events` events in one statement (the
trigger fans each out to every endpoint, as in production), runs `--workers` delivery
workers (one by default), each in a process of its own with its production settings, as
several `kovra worker` processes would be, and prints how long every delivery took to be
recorded delivered. With several, their claims contend for the one advisory lock that keeps
each endpoint's bound across workers (`gateway.webhooks.records.deliveries.claim`). The sinks are
Python processes on the same cores, so the figure is a floor, not a ceiling.
`--in-flight-max` is each endpoint's bound on attempts in flight to it, and
`--receiver-delay-ms` how long each sink takes to answer: with a delay, an endpoint takes at
most `in_flight_max` deliveries per delay.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import multiprocessing.synchronize
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import uvloop

from gateway.infra.sealing import SecretBox
from gateway.tenancy.records import create_tenant
from gateway.webhooks.records.endpoints import (
    create_endpoint,
    in_flight_max_ceiling,
    in_flight_max_default,
)
from gateway.webhooks.signing import new_secret
from gateway.webhooks.worker import DeliveryWorker
from loadtest.bench_gateway import _free_port, bench_environment
from loadtest.sink import delay_ms_max

poll_seconds = 0.05
wait_seconds_max = 600
workers_max = 8
# How long a worker process may take to import Kovra and open its pool before the run starts.
worker_ready_seconds_max = 60


async def _deliver(
    database_url: str,
    key_hex: str,
    ready: multiprocessing.synchronize.Semaphore,
    go: multiprocessing.synchronize.Event,
) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=2, max_size=10)
    try:
        worker = DeliveryWorker(
            pool, SecretBox(key_hex), schedule=(1.0,), timeout_seconds=10, sandbox=True
        )
        ready.release()
        await asyncio.to_thread(go.wait)
        await worker.run_forever()
    finally:
        await pool.close()


def _worker_process(
    database_url: str,
    key_hex: str,
    ready: multiprocessing.synchronize.Semaphore,
    go: multiprocessing.synchronize.Event,
) -> None:
    """One delivery worker, on uvloop as `kovra worker` runs it: ready once its pool is
    open, delivering once `go` is set, until the benchmark terminates it."""
    uvloop.run(_deliver(database_url, key_hex, ready, go))


async def _seed(
    pool: asyncpg.Pool, box: SecretBox, ports: list[int], events: int, in_flight_max: int
) -> None:
    tenant = await create_tenant(pool, name="bench", tier="growth", compliance_region="EU")
    for port in ports:
        await create_endpoint(
            pool,
            box,
            endpoint_id=uuid.uuid4(),
            tenant_id=tenant.id,
            url=f"http://127.0.0.1:{port}/hooks",
            description=None,
            enabled_events=["*"],
            secret=new_secret(),
            in_flight_max=in_flight_max,
        )
    ids = [uuid.uuid4() for _ in range(events)]
    await pool.execute(
        """INSERT INTO events (id, tenant_id, type, object_id, payload)
           SELECT id, $2, 'deposit.posted', id, '{"amount": 1250, "currency": "EUR"}'
             FROM unnest($1::uuid[]) AS e(id)""",
        ids,
        tenant.id,
    )


async def _wait_delivered(pool: asyncpg.Pool, wanted: int) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < wait_seconds_max:
        delivered = await pool.fetchval(
            "SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'"
        )
        if delivered >= wanted:
            return time.perf_counter() - started
        await asyncio.sleep(poll_seconds)
    raise SystemExit(f"not every delivery was made in {wait_seconds_max} s")


async def _run(
    database_url: str, ports: list[int], *, events: int, workers: int, in_flight_max: int
) -> float:
    """Seed the deliveries, start `workers` worker processes, release them together and
    time them until every delivery is recorded delivered."""
    pool = await asyncpg.create_pool(database_url, min_size=2, max_size=10)
    # A key of the benchmark's own: the workers open every secret they sign with, as in
    # production.
    key_hex = secrets.token_hex(32)
    context = multiprocessing.get_context("spawn")
    ready, go = context.Semaphore(0), context.Event()
    processes = [
        context.Process(target=_worker_process, args=(database_url, key_hex, ready, go))
        for _ in range(workers)
    ]
    try:
        await _seed(pool, SecretBox(key_hex), ports, events, in_flight_max)
        for process in processes:
            process.start()
        for _ in processes:
            if not await asyncio.to_thread(ready.acquire, timeout=worker_ready_seconds_max):
                raise SystemExit("a worker process did not start")
        go.set()
        return await _wait_delivered(pool, events * len(ports))
    finally:
        for process in processes:
            process.terminate()
            process.join(timeout=10)
        await pool.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--events", type=int, default=1_000)
    parser.add_argument("--endpoints", type=int, default=4)
    parser.add_argument("--workers", type=int, choices=range(1, workers_max + 1), default=1)
    parser.add_argument(
        "--in-flight-max",
        type=int,
        choices=range(1, in_flight_max_ceiling + 1),
        default=in_flight_max_default,
        metavar=f"1..{in_flight_max_ceiling}",
    )
    parser.add_argument(
        "--receiver-delay-ms",
        type=int,
        choices=range(delay_ms_max + 1),
        default=0,
        metavar=f"0..{delay_ms_max}",
    )
    arguments = parser.parse_args(argv)
    ports = [_free_port() for _ in range(arguments.endpoints)]
    sink_command = [sys.executable, "-m", "loadtest.sink"]
    delay = str(arguments.receiver_delay_ms)
    sinks = [subprocess.Popen([*sink_command, str(port), delay]) for port in ports]
    try:
        time.sleep(1)  # The sinks bind their ports.
        with (
            tempfile.TemporaryDirectory() as folder,
            bench_environment(Path(folder)) as environment,
        ):
            elapsed = asyncio.run(
                _run(
                    environment["DATABASE_URL"],
                    ports,
                    events=arguments.events,
                    workers=arguments.workers,
                    in_flight_max=arguments.in_flight_max,
                )
            )
    finally:
        for sink in sinks:
            sink.kill()
            sink.wait(timeout=10)
    deliveries = arguments.events * arguments.endpoints
    print(
        f"{deliveries:,} deliveries ({arguments.events:,} events x {arguments.endpoints} "
        f"endpoints) in {elapsed:.2f} s: {deliveries / elapsed:,.0f}/s "
        f"({arguments.workers} worker process(es), in_flight_max {arguments.in_flight_max}, "
        f"receivers answering after {arguments.receiver_delay_ms} ms, "
        f"sinks on the same {os.cpu_count()} cores)"
    )


if __name__ == "__main__":
    main()
