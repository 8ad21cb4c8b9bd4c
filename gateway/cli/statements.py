"""`kovra statements ingest FILE`: a bank's camt.053 statement or camt.054 notification,
ingested as the admin API's `POST /admin/v1/statements` does (same service, same checks,
audited under the operator's name)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.cli.common import Subcommands, _actor, _settings, _with_runtime

if TYPE_CHECKING:
    from gateway.runtime import Runtime


def register(subcommands: Subcommands) -> None:
    statements = subcommands.add_parser("statements", help="bank statements").add_subparsers(
        dest="statements_command", required=True
    )
    ingest = statements.add_parser("ingest", help="ingest a camt.053 or camt.054 file")
    ingest.add_argument("file", type=Path)
    ingest.set_defaults(run=command_statements_ingest)


def command_statements_ingest(arguments: argparse.Namespace) -> int:
    import msgspec  # noqa: PLC0415

    from ledger.errors import DomainError  # noqa: PLC0415
    from rails.statements.camt import file_bytes_max  # noqa: PLC0415

    path: Path = arguments.file
    try:
        with path.open("rb") as file:
            raw = file.read(file_bytes_max + 1)
    except OSError as error:
        print(f"cannot read {path}: {error.strerror}", file=sys.stderr)
        return 2

    async def run(runtime: Runtime) -> int:
        try:
            ingestion = await runtime.funding.ingest(raw, actor=_actor())
        except DomainError as error:
            print(f"{error.code}: {error.detail}", file=sys.stderr)
            return 1
        print(msgspec.json.encode(ingestion).decode())
        return 0

    return asyncio.run(_with_runtime(_settings(), run))
