"""`kovra dev`: everything in one process on embedded defaults (the work is gateway.dev's)."""

from __future__ import annotations

import argparse

from gateway.cli.common import Subcommands, port_default


def register(subcommands: Subcommands) -> None:
    dev = subcommands.add_parser("dev", help="everything in one process on embedded defaults")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=port_default)
    dev.set_defaults(run=command_dev)


def command_dev(arguments: argparse.Namespace) -> int:
    from gateway.dev.run import run_dev  # noqa: PLC0415

    return run_dev(host=arguments.host, port=arguments.port)
