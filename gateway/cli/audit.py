"""`kovra audit`: checking the audit trail's hash chain and exporting a period of it."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from gateway.cli.common import Subcommands, _settings, _timestamp, _with_runtime

if TYPE_CHECKING:
    from gateway.runtime import Runtime


def register(subcommands: Subcommands) -> None:
    audit_parser = subcommands.add_parser("audit", help="the audit trail").add_subparsers(
        dest="audit_command", required=True
    )
    audit_parser.add_parser("verify", help="check the hash chain; non-zero if broken").set_defaults(
        run=command_audit
    )
    export = audit_parser.add_parser("export", help="write records with a sha256 and count")
    export.add_argument("--from", dest="start", type=_timestamp, required=True)
    export.add_argument("--to", dest="end", type=_timestamp, required=True)
    export.add_argument("--output", required=True)
    export.set_defaults(run=command_audit)


def command_audit(arguments: argparse.Namespace) -> int:
    from compliance.audit.chain import AuditInputError  # noqa: PLC0415
    from compliance.audit.export import export  # noqa: PLC0415
    from compliance.audit.verify import verify  # noqa: PLC0415

    async def run(runtime: Runtime) -> int:
        if arguments.audit_command == "verify":
            result = await verify(runtime.pool)
            print(msgspec.json.encode(result).decode())
            return 0 if result.ok else 1
        try:
            exported = await export(
                runtime.pool, start=arguments.start, end=arguments.end, path=Path(arguments.output)
            )
        except AuditInputError as error:
            print(error, file=sys.stderr)
            return 2
        print(msgspec.json.encode(exported).decode())
        return 0

    return asyncio.run(_with_runtime(_settings(), run))
