"""A shared embedded ledger for multi-process deployments without a TigerBeetle cluster.

The embedded engine is single-process (its journal is locked to one process), yet the
gateway runs several workers and `kovra worker` runs apart. `ledger.remote.server` owns one
`EmbeddedClient` and serves it over a local socket, in the wire protocol of
`ledger.remote.protocol`; every other process uses `ledger.clients.RemoteLedgerClient`.

The server is deliberately not imported here, so `python -m ledger.remote.server` runs it
without importing it twice.
"""

from ledger.remote.protocol import LedgerAddress, format_address, parse_address

# `server` is public (`kovra ledger-server` runs it) but not imported here, as said above.
__all__ = ["LedgerAddress", "format_address", "parse_address", "server"]
