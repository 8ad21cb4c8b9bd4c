"""Every kind of ledger transfer a wallet statement can show names the API object behind it
with that object's own id prefix (a payout's legs the transfer, a batch's pair legs the
batch), never the generic `obj_`, so a statement line joins to what the tenant knows; and
a statement pages by the ledger timestamp of each page's last transfer, reaching every
transfer once."""

from __future__ import annotations

from typing import Any, cast

from gateway.http.paging import PageRequest, numbers
from gateway.wallets.service import Wallets, statement_entry
from ledger.clients import LedgerClient
from ledger.statements import StatementEntry
from ledger.transfers import TransferCode, new_object_id
from tests.ledger.fixtures import make_world

prefixes = {
    TransferCode.DEPOSIT: "dep",
    TransferCode.LIQUIDITY_FUNDING: "fund",
    TransferCode.HOLD: "hold",
    TransferCode.BATCH_SOURCE: "batch",
    TransferCode.BATCH_FEE: "batch",
    TransferCode.BATCH_TARGET: "batch",
    TransferCode.BATCH_REVERSAL: "batch",
    TransferCode.FUNDING_CREDIT: "bke",
    TransferCode.SUSPENSE_CREDIT: "bke",
    TransferCode.SUSPENSE_RELEASE: "bke",
    TransferCode.COLLECTION_CREDIT: "col",
    TransferCode.COLLECTION_RETURN: "col",
    TransferCode.COLLECTION_RETURN_SHORTFALL: "col",
    TransferCode.BUCKET_ALLOCATION: "orc",
    TransferCode.PARTNER_DELIVERY: "ord",
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


async def test_a_statement_pages_by_ledger_timestamp(ledger_client: LedgerClient) -> None:
    world = await make_world(ledger_client, {"EUR": 1})
    for amount in range(2, 6):
        await world.ledger.deposit(
            tenant_id=world.tenant_id,
            deposit_id=new_object_id(),
            currency_code="EUR",
            amount_minor=amount,
        )
    unused = cast("Any", None)  # A statement reads the ledger only.
    wallets = Wallets(
        ledger=world.ledger,
        ledger_client=ledger_client,
        statements=world.statements,
        pool=unused,
        writer=unused,
        sandbox=True,
    )
    seen: list[int] = []
    cursors: list[str | None] = []
    request: PageRequest[int] | None = PageRequest(limit=2, cursor=None, kind=numbers)
    while request is not None:
        page = await wallets.statement(world.tenant_id, currency="EUR", page=request)
        seen += [entry.amount for entry in page.data]
        cursors.append(page.next_cursor)
        request = request.following(page.next_cursor)
    assert seen == [1, 2, 3, 4, 5]
    # Three pages: two full ones with a cursor, then the last, short one without.
    assert [cursor is None for cursor in cursors] == [False, False, True]
