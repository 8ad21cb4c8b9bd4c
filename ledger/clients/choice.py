"""Which ledger client a process opens: a TigerBeetle cluster, the shared engine, or its own.

Every Kovra process (a gateway worker, `kovra worker`, the CLI) opens one ledger client and
shares it. Which backend that is follows from the configuration alone, by the rule below, so
it lives with the clients and takes plain values: the caller maps its own configuration
(`TB_ADDRESSES`, `TB_CLUSTER_ID`, `KOVRA_LEDGER_ADDRESS`, `KOVRA_LEDGER_TIMEOUT_MS`, the data
directory) onto the parameters.
"""

from __future__ import annotations

from pathlib import Path

from ledger.clients.base import LedgerClient
from ledger.clients.coalescing import CoalescingClient
from ledger.clients.embedded import EmbeddedClient
from ledger.clients.remote import RemoteLedgerClient
from ledger.clients.tigerbeetle import TigerBeetleClient, TigerBeetleSettings


def open_ledger_client(
    *,
    tigerbeetle_addresses: str | None,
    cluster_id: int,
    ledger_address: str | None,
    journal_path: Path | None,
    timeout_ms: int,
) -> CoalescingClient:
    """The TigerBeetle cluster at `tigerbeetle_addresses` when given; else the shared ledger
    server at `ledger_address` when given; else the embedded engine, single-process,
    journaling to `journal_path` (in memory without one). Whichever it is, the
    `create_transfers` calls of one event-loop turn share a request (`CoalescingClient`)."""
    backend: LedgerClient
    if tigerbeetle_addresses:
        backend = TigerBeetleClient(
            TigerBeetleSettings(
                addresses=tigerbeetle_addresses, cluster_id=cluster_id, timeout_ms=timeout_ms
            )
        )
    elif ledger_address:
        backend = RemoteLedgerClient(ledger_address, timeout_ms=timeout_ms)
    else:
        backend = EmbeddedClient(journal_path)
    return CoalescingClient(backend)
