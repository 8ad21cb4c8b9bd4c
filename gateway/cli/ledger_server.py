"""`kovra ledger-server`: the embedded ledger served to several processes (the server
itself is ledger.remote's)."""

from __future__ import annotations

import argparse

from gateway.cli.common import Subcommands


def register(subcommands: Subcommands) -> None:
    ledger_server = subcommands.add_parser(
        "ledger-server", help="serve the embedded ledger to several processes"
    )
    ledger_server.add_argument("--address", default="127.0.0.1:3300")
    ledger_server.add_argument("--journal", default=None)
    ledger_server.set_defaults(run=command_ledger_server)


def command_ledger_server(arguments: argparse.Namespace) -> int:
    from ledger.remote.server import main as ledger_server_main  # noqa: PLC0415

    argv = ["--address", arguments.address]
    if arguments.journal:
        argv += ["--journal", arguments.journal]
    return ledger_server_main(argv)
