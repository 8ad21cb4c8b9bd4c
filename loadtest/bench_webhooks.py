"""`python -m loadtest.bench_webhooks`: how fast `kovra worker` delivers signed webhooks.

On a fresh, migrated database it creates a tenant with `--endpoints` endpoints, each a
`loadtest.sink` process on this machine, writes `--events` events in one statement (the
trigger fans each out to every endpoint, as in production), runs one delivery worker with
its production settings and prints how long every delivery took to be recorded delivered.
The sinks are Python processes on the same cores, so the figure is a floor, not a ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

from gateway.db.tenancy import create_tenant
from gateway.sealing import SecretBox
from gateway.webhooks.endpoints import create_endpoint
from gateway.webhooks.signing import new_secret
from gateway.webhooks.worker import DeliveryWorker
from loadtest.bench_gateway import _free_port, bench_environment

poll_seconds = 0.05
wait_seconds_max = 600


async def _run(database_url: str, ports: list[int], events: int) -> float:
    pool = await asyncpg.create_pool(database_url, min_size=2, max_size=10)
    # A key of the benchmark's own: the worker opens every secret it signs with, as in
    # production.
    box = SecretBox(secrets.token_hex(32))
    try:
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
            )
        ids = [uuid.uuid4() for _ in range(events)]
        await pool.execute(
            """INSERT INTO events (id, tenant_id, type, object_id, payload)
               SELECT id, $2, 'deposit.posted', id, '{"amount": 1250, "currency": "EUR"}'
                 FROM unnest($1::uuid[]) AS e(id)""",
            ids,
            tenant.id,
        )
        worker = DeliveryWorker(pool, box, schedule=(1.0,), timeout_seconds=10, sandbox=True)
        wanted = events * len(ports)
        started = time.perf_counter()
        task = asyncio.create_task(worker.run_forever())
        try:
            while time.perf_counter() - started < wait_seconds_max:
                delivered = await pool.fetchval(
                    "SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'"
                )
                if delivered >= wanted:
                    return time.perf_counter() - started
                await asyncio.sleep(poll_seconds)
            raise SystemExit(f"not every delivery was made in {wait_seconds_max} s")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        await pool.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--events", type=int, default=1_000)
    parser.add_argument("--endpoints", type=int, default=4)
    arguments = parser.parse_args(argv)
    ports = [_free_port() for _ in range(arguments.endpoints)]
    sinks = [subprocess.Popen([sys.executable, "-m", "loadtest.sink", str(p)]) for p in ports]
    try:
        time.sleep(1)  # The sinks bind their ports.
        with (
            tempfile.TemporaryDirectory() as folder,
            bench_environment(Path(folder)) as environment,
        ):
            elapsed = asyncio.run(_run(environment["DATABASE_URL"], ports, arguments.events))
    finally:
        for sink in sinks:
            sink.kill()
    deliveries = arguments.events * arguments.endpoints
    print(
        f"{deliveries:,} deliveries ({arguments.events:,} events x {arguments.endpoints} "
        f"endpoints) in {elapsed:.2f} s: {deliveries / elapsed:,.0f}/s "
        f"(one worker, sinks on the same {os.cpu_count()} cores)"
    )


if __name__ == "__main__":
    main()
