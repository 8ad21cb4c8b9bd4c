"""`kovra liquidity`: the platform's own money in the ledger (its FX position)."""

from __future__ import annotations

import argparse
import asyncio

from gateway.cli.common import Subcommands, _actor, _bounded, _settings, _with_services
from gateway.runtime import Services


def register(subcommands: Subcommands) -> None:
    liquidity = subcommands.add_parser("liquidity", help="platform liquidity").add_subparsers(
        dest="liquidity_command", required=True
    )
    fund = liquidity.add_parser("fund", help="fund the platform's FX position")
    fund.add_argument("currency")
    fund.add_argument("amount_minor", type=_bounded(1, 10**18))
    fund.set_defaults(run=command_liquidity_fund)


def command_liquidity_fund(arguments: argparse.Namespace) -> int:
    from gateway.infra.database.records import record_admin_action  # noqa: PLC0415
    from ledger.transfers import new_object_id  # noqa: PLC0415

    async def run(services: Services) -> int:
        funding_id = new_object_id()
        await record_admin_action(
            services.pool,
            actor=_actor(),
            action="liquidity.fund",
            target=f"currency:{arguments.currency.upper()}",
            details={"amount": arguments.amount_minor, "funding_id": funding_id},
        )
        await services.ledger.fund_liquidity(
            funding_id=funding_id,
            currency_code=arguments.currency,
            amount_minor=arguments.amount_minor,
        )
        print(f"funded {arguments.amount_minor} minor units of {arguments.currency.upper()}")
        return 0

    return asyncio.run(_with_services(_settings(), run))
