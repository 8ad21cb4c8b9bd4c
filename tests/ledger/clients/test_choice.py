"""`open_ledger_client` picks a process's ledger by the configuration's precedence.

Proves that TigerBeetle addresses win over a ledger server's address, which wins over the
embedded engine, and that the embedded engine journals to the path given (or stays in memory
without one); the chosen backend is always behind the coalescing client. Nothing connects:
the TigerBeetle and remote clients connect lazily, and port 1 never answers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.clients import (
    CoalescingClient,
    EmbeddedClient,
    RemoteLedgerClient,
    TigerBeetleClient,
    open_ledger_client,
)

unanswered_address = "127.0.0.1:1"


def _choose(
    *,
    tigerbeetle_addresses: str | None = None,
    ledger_address: str | None = None,
    journal_path: Path | None = None,
) -> CoalescingClient:
    return open_ledger_client(
        tigerbeetle_addresses=tigerbeetle_addresses,
        cluster_id=7,
        ledger_address=ledger_address,
        journal_path=journal_path,
        timeout_ms=1_234,
    )


async def test_tigerbeetle_addresses_come_first() -> None:
    client = _choose(tigerbeetle_addresses=unanswered_address, ledger_address=unanswered_address)
    try:
        assert isinstance(client.backend, TigerBeetleClient)
    finally:
        await client.close()


async def test_a_ledger_address_comes_next() -> None:
    client = _choose(ledger_address=unanswered_address)
    try:
        assert isinstance(client.backend, RemoteLedgerClient)
        assert client.backend.address == unanswered_address
    finally:
        await client.close()


@pytest.mark.parametrize("journaled", [True, False], ids=["journal", "in-memory"])
async def test_otherwise_the_embedded_engine(tmp_path: Path, journaled: bool) -> None:
    journal = tmp_path / "ledger.journal" if journaled else None
    client = _choose(journal_path=journal)
    try:
        assert isinstance(client.backend, EmbeddedClient)
        assert (tmp_path / "ledger.journal").exists() is journaled
    finally:
        await client.close()
