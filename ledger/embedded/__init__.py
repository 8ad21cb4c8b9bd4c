"""The embedded ledger engine: TigerBeetle's semantics in-process, for `kovra dev` and tests.

`Engine` is the state machine and `Journal` its write-ahead log; `ledger.clients.embedded`
puts them behind the `LedgerClient` interface.
"""

from ledger.embedded.engine import Engine
from ledger.embedded.journal import Journal, JournalCorrupt, JournalInUse

__all__ = ["Engine", "Journal", "JournalCorrupt", "JournalInUse"]
