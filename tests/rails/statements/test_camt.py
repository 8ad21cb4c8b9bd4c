"""Reading camt files proves: camt.053 and camt.054 in versions .02 and .08, valid against the
official XSDs, give their reports, balances and booked entries with amounts in minor units
of the account's currency (two decimals, none, three); an amount with more decimals than
the currency has is refused, never rounded; entries not booked are counted, not read; each
entry's key is the bank's reference, else the entry reference, else a digest that is the
same in a notification and a statement; and a file with a DOCTYPE (external entities,
billion laughs), a file invalid against its schema, an unsupported version, a file that is
not XML, and one over the size bound are refused with `InvalidStatement` naming why."""

from __future__ import annotations

import dataclasses

import pytest

from ledger.currencies import CurrencyRegistry
from rails.statements.camt import InvalidStatement, file_bytes_max, read_statement
from tests.rails.statements.camt_files import EntrySpec, FileSpec, camt

currencies = CurrencyRegistry(["EUR", "GBP", "JPY", "KWD", "IDR"])
credit = EntrySpec(
    amount="1234.56",
    servicer_reference="BANKREF-1",
    entry_reference="NTRY-1",
    end_to_end_id="E2E-1",
    unstructured=("Invoice 42", "RF55 KV1Z"),
    creditor_reference="RF55KV1Z",
)


@pytest.mark.parametrize("kind", ["camt.053", "camt.054"])
@pytest.mark.parametrize("version", ["02", "08"])
def test_every_supported_version_reads_its_booked_entries(kind: str, version: str) -> None:
    debit = EntrySpec(amount="10", direction="DBIT", entry_reference="NTRY-2")
    pending = EntrySpec(amount="5.00", status="PDNG", servicer_reference="P-1")
    spec = FileSpec(kind=kind, version=version, entries=(credit, pending, debit))
    parsed = read_statement(camt(spec), currencies=currencies)
    assert (parsed.kind, parsed.message_type) == (kind, f"{kind}.001.{version}")
    assert parsed.message_id == "MSG-0001"
    (report,) = parsed.reports
    assert (report.account, report.currency, report.not_booked_count) == (
        "DE89370400440532013000",
        "EUR",
        1,
    )
    first, second = report.entries
    assert (first.amount_minor, first.direction, first.key, first.key_source) == (
        123456,
        "credit",
        "BANKREF-1",
        "AcctSvcrRef",
    )
    assert first.unstructured == ("Invoice 42", "RF55 KV1Z")
    assert first.creditor_references == ("RF55KV1Z",)
    assert first.end_to_end_ids == ("E2E-1",)
    assert (second.amount_minor, second.direction, second.key_source) == (1000, "debit", "NtryRef")
    assert second.position == 2
    if kind == "camt.053":
        assert report.opening is not None
        assert report.opening.amount_minor == 100000
        assert report.closing is not None
        assert report.closing.code == "CLBD"
    else:
        assert report.opening is None
        assert report.closing is None


@pytest.mark.parametrize(
    ("currency", "amount", "minor"),
    [("EUR", "0.01", 1), ("JPY", "15000", 15000), ("KWD", "1.005", 1005), ("GBP", "7.5", 750)],
)
def test_amounts_become_minor_units_of_the_account_currency(
    currency: str, amount: str, minor: int
) -> None:
    spec = FileSpec(
        currency=currency,
        opening=None,
        closing=("3", "DBIT"),
        entries=(EntrySpec(amount=amount, servicer_reference="R"),),
    )
    (report,) = read_statement(camt(spec), currencies=currencies).reports
    assert report.entries[0].amount_minor == minor
    assert report.closing is not None
    assert report.closing.amount_minor < 0


@pytest.mark.parametrize(("currency", "amount"), [("JPY", "1.5"), ("EUR", "0.001")])
def test_an_amount_finer_than_the_currency_is_refused(currency: str, amount: str) -> None:
    spec = FileSpec(kind="camt.054", currency=currency, entries=(EntrySpec(amount=amount),))
    with pytest.raises(InvalidStatement, match="more decimals"):
        read_statement(camt(spec), currencies=currencies)


def test_a_currency_the_deployment_does_not_enable_is_refused() -> None:
    spec = FileSpec(kind="camt.054", currency="USD", entries=(EntrySpec(amount="1"),))
    with pytest.raises(InvalidStatement, match="not enabled"):
        read_statement(camt(spec), currencies=currencies)


def test_the_digest_key_is_the_same_in_a_notification_and_its_statement() -> None:
    bare = EntrySpec(amount="99.99", unstructured=("rent march",), end_to_end_id="E-9")
    keys = {
        read_statement(
            camt(FileSpec(kind=kind, version=version, entries=(bare,))), currencies=currencies
        )
        .reports[0]
        .entries[0]
        .key
        for kind, version in (("camt.054", "02"), ("camt.053", "08"))
    }
    (key,) = keys
    assert len(key) == 64
    other = dataclasses.replace(bare, amount="99.98")
    changed = read_statement(camt(FileSpec(entries=(other,))), currencies=currencies)
    assert changed.reports[0].entries[0].key != key


def test_a_file_with_a_doctype_is_refused_whatever_it_declares() -> None:
    document = camt(FileSpec(entries=(credit,))).decode()
    body = document.split("\n", 1)[1]
    external = '<!DOCTYPE Document [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    laughs = (
        '<!DOCTYPE Document [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
        '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]>'
    )
    for declaration in (external, laughs, "<!DOCTYPE Document>"):
        hostile = body.replace("<Ustrd>Invoice 42</Ustrd>", "<Ustrd>&x;</Ustrd>")
        if declaration is laughs:
            hostile = body.replace("<Ustrd>Invoice 42</Ustrd>", "<Ustrd>&c;</Ustrd>")
        if declaration == "<!DOCTYPE Document>":
            hostile = body
        with pytest.raises(InvalidStatement, match="DOCTYPE"):
            read_statement(f"{declaration}\n{hostile}".encode(), currencies=currencies)


def test_a_file_invalid_against_its_schema_names_what_is_wrong() -> None:
    document = camt(FileSpec(entries=(credit,))).decode()
    broken = document.replace("<CdtDbtInd>CRDT</CdtDbtInd>", "<CdtDbtInd>CREDIT</CdtDbtInd>", 1)
    with pytest.raises(InvalidStatement, match=r"not a valid camt\.053\.001\.08.*CdtDbtInd"):
        read_statement(broken.encode(), currencies=currencies)
    missing = document.replace("<MsgId>MSG-0001</MsgId>", "")
    with pytest.raises(InvalidStatement, match="MsgId"):
        read_statement(missing.encode(), currencies=currencies)


def test_other_messages_and_non_xml_are_refused() -> None:
    document = camt(FileSpec(entries=(credit,))).decode()
    with pytest.raises(InvalidStatement, match=r"camt\.053\.001\.04 is not supported"):
        read_statement(document.replace("001.08", "001.04").encode(), currencies=currencies)
    with pytest.raises(InvalidStatement, match="not an ISO 20022"):
        read_statement(b"<Document/>", currencies=currencies)
    with pytest.raises(InvalidStatement, match="well-formed"):
        read_statement(b'{"json": true}', currencies=currencies)
    with pytest.raises(InvalidStatement, match="larger than"):
        read_statement(b" " * (file_bytes_max + 1), currencies=currencies)


def test_an_entry_in_another_currency_than_its_account_is_refused() -> None:
    document = camt(FileSpec(entries=(credit,))).decode()
    foreign = document.replace('<Amt Ccy="EUR">1234.56</Amt>', '<Amt Ccy="GBP">1234.56</Amt>')
    with pytest.raises(InvalidStatement, match="account is in EUR"):
        read_statement(foreign.encode(), currencies=currencies)
