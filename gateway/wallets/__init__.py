"""Wallets: deposits, two-phase holds, balances and statements, all moved in and read from
the ledger.

Public: `service` (`Wallets`), `routes`, `wire`, `errors`. Private: `records`."""

__all__ = ["errors", "routes", "service", "wire"]
