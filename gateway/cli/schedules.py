"""`kovra schedules run --at TIMESTAMP`: start every schedule occurrence due at that instant,
as the worker's pass does (same service, same claims: run it beside workers and each
occurrence still starts one run), and print what it started and skipped as JSON."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING

from gateway.cli.common import Subcommands, _settings, _timestamp, _with_runtime

if TYPE_CHECKING:
    from gateway.runtime import Runtime


def register(subcommands: Subcommands) -> None:
    schedules = subcommands.add_parser("schedules", help="scheduled pulls").add_subparsers(
        dest="schedules_command", required=True
    )
    run = schedules.add_parser("run", help="start what is due at an instant, print it as JSON")
    run.add_argument(
        "--at",
        type=_timestamp,
        required=True,
        help="RFC 3339 instant (UTC when it names no offset)",
    )
    run.set_defaults(run=command_schedules_run)


def command_schedules_run(arguments: argparse.Namespace) -> int:
    import msgspec  # noqa: PLC0415

    async def run(runtime: Runtime) -> int:
        report = await runtime.schedules.run_due(arguments.at)
        print(msgspec.json.encode(report).decode())
        return 0

    return asyncio.run(_with_runtime(_settings(), run))
