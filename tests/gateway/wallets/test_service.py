"""Every kind of ledger transfer a wallet statement can show names the API object behind it
with that object's own id prefix (a payout's legs the transfer, a batch's pair legs the
batch), never the generic `obj_`, so a statement line joins to what the tenant knows."""

from __future__ import annotations

from gateway.wallets.service import statement_entry
from ledger.statements import StatementEntry
from ledger.transfers import TransferCode

prefixes = {
    TransferCode.DEPOSIT: "dep",
    TransferCode.LIQUIDITY_FUNDING: "fund",
    TransferCode.HOLD: "hold",
    TransferCode.BATCH_SOURCE: "batch",
    TransferCode.BATCH_FEE: "batch",
    TransferCode.BATCH_TARGET: "batch",
    TransferCode.BATCH_REVERSAL: "batch",
}


def entry_of(code: TransferCode) -> StatementEntry:
    return StatementEntry(
        transfer_id=1,
        object_id=42,
        kind=code.name.lower(),
        direction="debit",
        amount=100,
        status="posted",
        counterparty="fx_position",
        timestamp_ns=1_700_000_000_000_000_000,
        balance_posted=900,
        balance_pending=0,
    )


def test_every_transfer_code_names_its_object() -> None:
    for code in TransferCode:
        object_id = statement_entry(entry_of(code), "EUR").object_id
        assert object_id.split("_")[0] == prefixes.get(code, "tr"), code
