"""What every command group of `kovra` shares: settings that stop with a usage error, the
runtime an operator command runs against, the actor its admin actions are recorded under,
and the argument types.

The argument types keep their names on purpose: argparse names the type in its message for
a value it cannot convert ("invalid _timestamp value: 'x'", "invalid parse value"), and
those messages are part of the command's behaviour.
"""

from __future__ import annotations

import argparse
import datetime
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeAlias

from gateway.settings import Settings, SettingsError, load_settings
from ledger.embedded.journal import JournalInUse

if TYPE_CHECKING:
    from gateway.runtime import Runtime

# What `main` hands each group's `register`: the top-level parser's sub-commands.
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

port_default = 8000


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as error:
        print(error, file=sys.stderr)
        raise SystemExit(2) from None


def _page_limit(text: str) -> int:
    """A page size within the admin plane's bound, or argparse's usage error."""
    from gateway.tenancy.records import admin_page_max  # noqa: PLC0415

    if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= admin_page_max:
        raise argparse.ArgumentTypeError(f"must be between 1 and {admin_page_max}")
    return int(text)


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


async def _with_runtime(settings: Settings, action: Callable[[Runtime], Awaitable[int]]) -> int:
    # Imported here: the runtime reaches the metrics, which `serve` must configure first.
    from gateway.runtime import open_runtime  # noqa: PLC0415

    try:
        runtime = await open_runtime(settings)
    except JournalInUse:
        print(
            "the embedded ledger is in use by a running Kovra: use the admin API "
            "(/admin/v1) instead, or share the ledger with TB_ADDRESSES or KOVRA_LEDGER_ADDRESS",
            file=sys.stderr,
        )
        return 1
    try:
        return await action(runtime)
    finally:
        await runtime.close()


def _timestamp(text: str) -> datetime.datetime:
    moment = datetime.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def _bounded(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return value

    return parse
