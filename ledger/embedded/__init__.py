"""The embedded ledger engine: TigerBeetle's semantics in-process, for `kovra dev` and tests.

`EmbeddedClient` has the methods, types and result statuses of `tigerbeetle.ClientAsync`.
"""

from ledger.embedded.client import EmbeddedClient

__all__ = ["EmbeddedClient"]
