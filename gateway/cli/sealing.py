"""`kovra secrets`: the key that seals webhook secrets, customers' personal data, mandates'
bank details and collection runs' messages at rest, a new one, and resealing everything
under the current one (customers' blind indexes are recomputed under it too).

Named after what it manages rather than the command, so it does not shadow the standard
library's `secrets`, which `new-key` uses.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import msgspec

from gateway.cli.common import Subcommands, _settings, _with_runtime

if TYPE_CHECKING:
    from gateway.runtime import Runtime


def register(subcommands: Subcommands) -> None:
    secrets_parser = subcommands.add_parser(
        "secrets",
        help="the key that seals webhook secrets, customers' data, mandates' bank details "
        "and collection runs' messages at rest",
    ).add_subparsers(dest="secrets_command", required=True)
    secrets_parser.add_parser(
        "new-key", help="print a new random key for KOVRA_SECRETS_KEY"
    ).set_defaults(run=command_secrets)
    secrets_parser.add_parser(
        "reseal",
        help="seal every webhook and partner secret, customer, mandate and collection run "
        "again under "
        "KOVRA_SECRETS_KEY and recompute the customers' blind indexes; resumable: a run "
        "that stops part way leaves what it resealed resealed",
    ).set_defaults(run=command_secrets)


def command_secrets(arguments: argparse.Namespace) -> int:
    if arguments.secrets_command == "new-key":
        print(secrets.token_urlsafe(48))
        return 0
    from gateway.collections.sealed import reseal_mandates, reseal_runs  # noqa: PLC0415
    from gateway.customers.service import reseal_customers  # noqa: PLC0415
    from gateway.infra.sealing import SecretUnreadable  # noqa: PLC0415
    from gateway.partners.service import reseal_partner_secrets  # noqa: PLC0415
    from gateway.webhooks.records.endpoints import reseal_secrets  # noqa: PLC0415

    async def run(runtime: Runtime) -> int:
        try:
            changed = await reseal_secrets(runtime.pool, runtime.secret_box)
        except SecretUnreadable as error:
            print(f"nothing was resealed: {error}", file=sys.stderr)
            return 1
        box = runtime.secret_box
        batched: list[tuple[str, Callable[[], Awaitable[int]]]] = [
            ("customers", lambda: reseal_customers(runtime.pool, box, runtime.blind_index)),
            ("mandates", lambda: reseal_mandates(runtime.pool, box)),
            ("collection_runs", lambda: reseal_runs(runtime.pool, box)),
            ("partners", lambda: reseal_partner_secrets(runtime.pool, box)),
        ]
        answer: dict[str, int | str] = {"resealed": changed}
        for name, reseal in batched:
            try:
                answer[name] = await reseal()
            except SecretUnreadable as error:
                # These are resealed a batch per transaction: those before the one that
                # failed stay resealed, and running the command again resumes.
                print(f"{name.replace('_', ' ')} were not all resealed: {error}", file=sys.stderr)
                return 1
        answer["key_id"] = box.current_key_id
        print(msgspec.json.encode(answer).decode())
        return 0

    return asyncio.run(_with_runtime(_settings(), run))
