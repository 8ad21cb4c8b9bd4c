"""`kovra sanctions`: loading a sanctions list into Postgres, where every process's
screening picks it up."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from compliance.sanctions.lists import SanctionsListError, load_ofac, load_simple_csv
from gateway.cli.common import Subcommands, _actor, _settings, _with_runtime

if TYPE_CHECKING:
    from gateway.runtime import Runtime


def register(subcommands: Subcommands) -> None:
    sanctions = subcommands.add_parser("sanctions", help="sanctions lists").add_subparsers(
        dest="sanctions_command", required=True
    )
    load = sanctions.add_parser("load", help="load a list (OFAC folder or simple CSV)")
    load.add_argument("path")
    load.add_argument("--format", choices=("ofac", "csv"), required=True)
    load.set_defaults(run=command_sanctions_load)


def command_sanctions_load(arguments: argparse.Namespace) -> int:
    from compliance.audit.chain import record_admin_action  # noqa: PLC0415
    from compliance.setup import store_list  # noqa: PLC0415

    path = Path(arguments.path)
    if arguments.format == "ofac" and not path.is_dir():
        print("--format ofac takes the folder holding sdn.csv and alt.csv", file=sys.stderr)
        return 2
    loader = load_ofac if arguments.format == "ofac" else load_simple_csv
    try:
        parties = loader(path)
    except SanctionsListError as error:
        print(error, file=sys.stderr)
        return 1

    async def run(runtime: Runtime) -> int:
        count = await store_list(runtime.pool, parties)
        await record_admin_action(
            runtime.pool,
            actor=_actor(),
            action="sanctions.load",
            target=f"sanctions:{arguments.format}",
            details={"path": str(path), "entries": count},
        )
        print(
            f"loaded {count} entries from {path}; running processes pick them up within "
            "KOVRA_SANCTIONS_REFRESH_SECONDS"
        )
        return 0

    return asyncio.run(_with_runtime(_settings(), run))
