"""The `kovra` command: run the gateway, the worker, migrations, and operator tasks.

This module only builds the top-level parser, lets each command group's module add its
sub-commands (`register`), and runs the one the arguments name. A group's module holds its
commands; each command imports its own work when it runs, so parsing stays quick and
nothing loads prometheus-client before `serve` has set up multiprocess metrics.

Operator commands (tenant, api-key, liquidity) act directly on Postgres, Redis and the
ledger with the same code as the admin API, and record their admin actions too.
"""

from __future__ import annotations

import argparse
from typing import Protocol

from gateway.cli import (
    audit,
    dev,
    freezes,
    ledger_server,
    liquidity,
    retention,
    sanctions,
    schedules,
    sealing,
    serve,
    statements,
    tenants,
)
from gateway.cli.common import Subcommands


class CommandGroup(Protocol):
    """A command group's module: it adds its sub-commands, each with its `run` default."""

    def register(self, subcommands: Subcommands) -> None: ...


# In this order in `kovra --help`.
command_groups: tuple[CommandGroup, ...] = (
    dev,
    serve,
    ledger_server,
    tenants,
    liquidity,
    sanctions,
    audit,
    retention,
    sealing,
    freezes,
    statements,
    schedules,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kovra", description=__doc__.splitlines()[0])
    subcommands = parser.add_subparsers(dest="command", required=True)
    for group in command_groups:
        group.register(subcommands)
    return parser


def main(argv: list[str] | None = None) -> None:
    arguments = build_parser().parse_args(argv)
    if getattr(arguments, "action", None) == "revoke" and not arguments.key_id:
        build_parser().error("api-key revoke needs --key-id")
    raise SystemExit(arguments.run(arguments))


if __name__ == "__main__":
    main()
