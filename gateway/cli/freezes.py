"""`kovra freeze`: freezing or unfreezing a tenant or one of its recipients, as the admin
API does."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

from gateway.cli.common import Subcommands, _actor, _settings, _with_runtime

if TYPE_CHECKING:
    from gateway.runtime import Runtime


def register(subcommands: Subcommands) -> None:
    freeze = subcommands.add_parser("freeze", help="freeze or unfreeze a tenant or recipient")
    freeze.add_argument("kind", choices=("tenant", "recipient"))
    freeze.add_argument("id")
    freeze.add_argument("--tenant", type=int, default=0, help="the recipient's tenant")
    freeze.add_argument("--unfreeze", action="store_true")
    freeze.set_defaults(run=command_freeze)


def command_freeze(arguments: argparse.Namespace) -> int:
    from gateway.http.ids import decode_id  # noqa: PLC0415
    from gateway.http.problems import ProblemError  # noqa: PLC0415

    status = "active" if arguments.unfreeze else "frozen"
    if arguments.kind == "recipient" and arguments.tenant <= 0:
        print("freeze recipient needs --tenant, the recipient's tenant id", file=sys.stderr)
        return 2

    async def run(runtime: Runtime) -> int:
        if arguments.kind == "tenant":
            found = (
                await runtime.freezes.set_tenant_status(
                    tenant_id=int(arguments.id), status=status, actor=_actor()
                )
                is not None
            )
        else:
            try:
                recipient_id = decode_id("rcp", arguments.id)
            except ProblemError:
                print(f"{arguments.id!r} is not a recipient id", file=sys.stderr)
                return 2
            found = await runtime.freezes.set_recipient_status(
                tenant_id=arguments.tenant,
                recipient_id=recipient_id,
                status=status,
                actor=_actor(),
            )
        if not found:
            print(f"no {arguments.kind} {arguments.id}", file=sys.stderr)
            return 1
        print(f"{arguments.kind} {arguments.id} is {status}")
        return 0

    return asyncio.run(_with_runtime(_settings(), run))
