"""`kovra liquidity`: the platform's own money in the ledger (its FX position)."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING

from gateway.cli.common import Subcommands, _actor, _bounded, _settings, _with_runtime

if TYPE_CHECKING:
    from gateway.runtime import Runtime


def register(subcommands: Subcommands) -> None:
    liquidity = subcommands.add_parser("liquidity", help="platform liquidity").add_subparsers(
        dest="liquidity_command", required=True
    )
    fund = liquidity.add_parser("fund", help="fund the platform's FX position")
    fund.add_argument("currency")
    fund.add_argument("amount_minor", type=_bounded(1, 10**18))
    fund.set_defaults(run=command_liquidity_fund)


def command_liquidity_fund(arguments: argparse.Namespace) -> int:
    async def run(runtime: Runtime) -> int:
        await runtime.wallets.fund_liquidity(
            actor=_actor(),
            currency=arguments.currency,
            amount_minor=arguments.amount_minor,
            reference=None,
        )
        print(f"funded {arguments.amount_minor} minor units of {arguments.currency.upper()}")
        return 0

    return asyncio.run(_with_runtime(_settings(), run))
