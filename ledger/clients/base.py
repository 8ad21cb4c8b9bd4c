"""The one async client interface Kovra uses to talk to TigerBeetle.

It is the subset of `tigerbeetle.ClientAsync` Kovra needs, with the `tigerbeetle` package's
own types and statuses, so every backend (the TigerBeetle adapter, the embedded engine, the
remote engine) is interchangeable and the conformance suite runs unchanged against each. The
native client has this very interface, so the TigerBeetle adapter types it with this too.
"""

from __future__ import annotations

from typing import Protocol

import tigerbeetle as tb

# TigerBeetle's largest request: a 1 MiB message minus header and multi-batch trailer,
# divided by the 128-byte event size. Queries return at most this many results too.
batch_size_max = 8189
# How long a client waits for the ledger's answer (`KOVRA_LEDGER_TIMEOUT_MS`), and its bound.
timeout_ms_default = 10_000
timeout_ms_max = 600_000
timeout_environment_variable = "KOVRA_LEDGER_TIMEOUT_MS"


class LedgerClient(Protocol):
    """What Kovra needs from TigerBeetle; `tigerbeetle.ClientAsync` semantics throughout."""

    async def create_accounts(self, accounts: list[tb.Account]) -> list[tb.CreateAccountResult]: ...

    async def create_transfers(
        self, transfers: list[tb.Transfer]
    ) -> list[tb.CreateTransferResult]: ...

    async def lookup_accounts(self, accounts: list[int]) -> list[tb.Account]: ...

    async def lookup_transfers(self, transfers: list[int]) -> list[tb.Transfer]: ...

    async def get_account_transfers(self, filter: tb.AccountFilter) -> list[tb.Transfer]:  # noqa: A002
        ...

    async def get_account_balances(
        self,
        filter: tb.AccountFilter,  # noqa: A002
    ) -> list[tb.AccountBalance]: ...

    async def query_accounts(self, query_filter: tb.QueryFilter) -> list[tb.Account]: ...

    async def query_transfers(self, query_filter: tb.QueryFilter) -> list[tb.Transfer]: ...

    async def close(self) -> None: ...
