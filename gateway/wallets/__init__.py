"""Wallets: deposits, two-phase holds, balances and statements, all moved in and read from
the ledger."""
