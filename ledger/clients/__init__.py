"""Kovra's ledger clients: one interface, one module per backend.

`LedgerClient` (in `base`) is the subset of `tigerbeetle.ClientAsync` Kovra uses, with
TigerBeetle's own types and statuses, so every backend is interchangeable and the conformance
suite runs unchanged against each: `TigerBeetleClient` over a real cluster, `EmbeddedClient`
(the engine in `ledger.embedded`, in-process) and `RemoteLedgerClient` (the engine shared by
several processes through `ledger.remote`'s server). `CoalescingClient` wraps any of them so
the `create_transfers` calls of one event-loop turn share a request, and `open_ledger_client`
chooses a process's client from its configuration.
"""

from ledger.clients.base import LedgerClient, batch_size_max, timeout_ms_default, timeout_ms_max
from ledger.clients.choice import open_ledger_client
from ledger.clients.coalescing import CoalescingClient
from ledger.clients.embedded import EmbeddedClient
from ledger.clients.remote import RemoteLedgerClient
from ledger.clients.tigerbeetle import TigerBeetleClient, TigerBeetleSettings

# `codec` (the 128-byte account and transfer layout) is public too: the embedded journal and
# the remote protocol write the same bytes.
__all__ = [
    "CoalescingClient",
    "EmbeddedClient",
    "LedgerClient",
    "RemoteLedgerClient",
    "TigerBeetleClient",
    "TigerBeetleSettings",
    "batch_size_max",
    "codec",
    "open_ledger_client",
    "timeout_ms_default",
    "timeout_ms_max",
]
