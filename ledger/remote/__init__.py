"""A shared embedded ledger for multi-process deployments without a TigerBeetle cluster.

The embedded engine is single-process (its journal is locked to one process), yet the
gateway runs several workers and `kovra worker` runs apart. `ledger.remote.server` owns one
`EmbeddedClient` and serves it over a local socket; every other process uses
`RemoteLedgerClient`, a `LedgerClient` with TigerBeetle's own types, statuses and exceptions.

The server is deliberately not imported here, so `python -m ledger.remote.server` runs it
without importing it twice.
"""

from ledger.remote.client import RemoteLedgerClient
from ledger.remote.protocol import parse_address

__all__ = ["RemoteLedgerClient", "parse_address"]
