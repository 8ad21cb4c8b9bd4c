"""`kovra retention`: deleting the rows kept only for a while (events, deliveries,
idempotency records) on demand, as the worker does on its schedule."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING

import msgspec

from gateway.cli.common import Subcommands, _settings, _with_runtime

if TYPE_CHECKING:
    from gateway.runtime import Runtime


def register(subcommands: Subcommands) -> None:
    retention_parser = subcommands.add_parser(
        "retention", help="rows kept for a while (events, deliveries, idempotency records)"
    ).add_subparsers(dest="retention_command", required=True)
    retention_parser.add_parser(
        "sweep", help="delete every row older than its retention now, in bounded batches"
    ).set_defaults(run=command_retention_sweep)


def command_retention_sweep(_: argparse.Namespace) -> int:
    from gateway.jobs import retention  # noqa: PLC0415

    settings = _settings()

    async def run(runtime: Runtime) -> int:
        deleted = {"deliveries": 0, "events": 0, "idempotency_records": 0}
        while True:
            swept = await retention.sweep(runtime.pool, settings.retention)
            for table, count in msgspec.structs.asdict(swept).items():
                deleted[table] += count
            if max(msgspec.structs.astuple(swept)) < retention.delete_batch_size_max:
                break
        print(msgspec.json.encode(deleted).decode())
        return 0

    return asyncio.run(_with_runtime(settings, run))
