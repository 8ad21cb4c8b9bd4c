"""`kovra serve`, `kovra worker` and `kovra migrate`: the processes of a deployment and the
step that readies its database."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import TYPE_CHECKING

import uvloop

from gateway.cli.common import Subcommands, _bounded, _settings, _with_runtime, port_default
from gateway.http.server import serve

if TYPE_CHECKING:
    from gateway.runtime import Runtime

workers_max = 64


def register(subcommands: Subcommands) -> None:
    serve_parser = subcommands.add_parser("serve", help="run the HTTP gateway")
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=port_default)
    serve_parser.add_argument("--workers", type=_bounded(1, workers_max), default=1)
    serve_parser.set_defaults(run=command_serve)

    worker = subcommands.add_parser(
        "worker",
        help="run the background work: transfer lifecycle, reconciler, webhook delivery",
    )
    worker.add_argument(
        "--metrics-port",
        type=_bounded(0, 65_535),
        # A string default goes through `type` too, so a bad variable is a clear error.
        default=os.environ.get("KOVRA_WORKER_METRICS_PORT", "0"),
        help="serve Prometheus metrics on this port (0: do not; KOVRA_WORKER_METRICS_PORT)",
    )
    worker.add_argument("--metrics-host", default="127.0.0.1")
    worker.set_defaults(run=command_worker)

    subcommands.add_parser("migrate", help="apply database migrations").set_defaults(
        run=command_migrate
    )


def command_serve(arguments: argparse.Namespace) -> int:
    settings = _settings()
    if arguments.workers > 1 and not settings.ledger_is_shared:
        print(
            "kovra serve --workers N>1 needs a ledger every worker can share: set TB_ADDRESSES "
            "(a TigerBeetle cluster) or KOVRA_LEDGER_ADDRESS (kovra ledger-server). The "
            "embedded ledger lives in one process.",
            file=sys.stderr,
        )
        return 2
    serve(host=arguments.host, port=arguments.port, workers=arguments.workers)
    return 0


def command_worker(arguments: argparse.Namespace) -> int:
    # Imported here, like every import below that reaches gateway.infra.observability:
    # prometheus-client must not load before `serve` sets up multiprocess metrics.
    from prometheus_client import start_http_server  # noqa: PLC0415

    from gateway.infra.garbage_collection import tune_garbage_collection  # noqa: PLC0415
    from gateway.infra.observability import configure_logging  # noqa: PLC0415
    from gateway.jobs.worker import run_workers  # noqa: PLC0415
    from gateway.transfers.rails_setup import NoRailConfigured  # noqa: PLC0415

    settings = _settings()
    configure_logging(settings.log_level)
    if arguments.metrics_port:
        # The worker's own metrics (webhook deliveries, queue depth): it serves no HTTP API.
        start_http_server(arguments.metrics_port, addr=arguments.metrics_host)

    async def run(runtime: Runtime) -> int:
        tune_garbage_collection()  # Start-up is done: what is alive now lives for good.
        try:
            await run_workers(runtime)
        except NoRailConfigured as error:
            print(error, file=sys.stderr)
            return 2
        return 0

    # uvloop, as the gateway's granian workers: the worker's time goes mostly to socket I/O
    # (Postgres, the ledger, the rails), which uvloop's transports do with less Python.
    return uvloop.run(_with_runtime(settings, run))


def command_migrate(_: argparse.Namespace) -> int:
    from gateway.infra.database.migrate import migrate  # noqa: PLC0415
    from gateway.runtime import default_database_url  # noqa: PLC0415

    settings = _settings()
    applied = asyncio.run(migrate(settings.database_url or default_database_url))
    print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")
    return 0
