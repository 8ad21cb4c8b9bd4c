"""Every pacs.008 Kovra emits is valid against the official ISO 20022 XSD, for each corridor
and rail; a message that would not be is refused before it leaves; pacs.002 status reports
are read into accepted, rejected (with the ISO reason) or pending."""

from __future__ import annotations

import datetime
import uuid
import xml.etree.ElementTree as ET

import pytest

from rails.bank_details import BankDetails, validate_bank_details
from rails.corridors import Rail
from rails.iso20022 import (
    InvalidMessage,
    PayoutInstruction,
    build_pacs002,
    build_pacs008,
    parse_pacs002,
    validate,
)

now = datetime.datetime(2026, 11, 21, 10, 30, tzinfo=datetime.UTC)
ns = {"p": "urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"}
recipients: dict[str, BankDetails] = {
    "EUR": validate_bank_details(
        country="DE", details={"iban": "DE89370400440532013000", "bic": "COBADEFFXXX"}
    ),
    "GBP": validate_bank_details(
        country="GB", details={"sort_code": "089999", "account_number": "66374958"}
    ),
    "IDR": validate_bank_details(
        country="ID", details={"bank_code": "014", "account_number": "1234567890"}
    ),
}


def _instruction(currency: str, rail: Rail, amount: int, **fields: object) -> PayoutInstruction:
    values: dict[str, object] = {
        "message_id": "KVR-MSG-1",
        "end_to_end_id": "tr_01JD3EXAMPLE",
        "uetr": uuid.uuid4(),
        "rail": rail,
        "currency": currency,
        "amount_minor": amount,
        "minor_units": 2,
        "debtor_name": "Kovra Ltd on behalf of Acme GmbH",
        "debtor_agent_bic": "KOVRGB2L",
        "creditor_name": "Supplier",
        "creditor_details": recipients[currency],
        "reference": "INV-2026-0042",
        "created_at": now,
    }
    values.update(fields)
    return PayoutInstruction(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("currency", "rail", "amount"),
    [
        ("EUR", Rail.SEPA_INSTANT, 123_456),
        ("EUR", Rail.SEPA_CREDIT_TRANSFER, 20_000_000),
        ("GBP", Rail.FASTER_PAYMENTS, 99),
        ("GBP", Rail.CHAPS, 500_000_000),
        ("IDR", Rail.BI_FAST, 1_739_809_782),
        ("IDR", Rail.RTGS, 90_000_000_000),
    ],
)
def test_pacs008_is_valid_for_every_corridor_and_rail(
    currency: str, rail: Rail, amount: int
) -> None:
    message = build_pacs008(_instruction(currency, rail, amount))
    validate(message, "pacs.008.001.08.xsd")  # Again, explicitly: the official schema.
    root = ET.fromstring(message)
    tx = root.find("p:FIToFICstmrCdtTrf/p:CdtTrfTxInf", ns)
    assert tx is not None
    settled = tx.find("p:IntrBkSttlmAmt", ns)
    assert settled is not None
    assert settled.get("Ccy") == currency
    assert settled.text == f"{amount / 100:.2f}"
    assert tx.findtext("p:PmtId/p:EndToEndId", namespaces=ns) == "tr_01JD3EXAMPLE"
    assert tx.findtext("p:RmtInf/p:Ustrd", namespaces=ns) == "INV-2026-0042"


def test_a_message_the_schema_refuses_is_never_built() -> None:
    with pytest.raises(InvalidMessage, match=r"pacs\.008"):
        build_pacs008(_instruction("EUR", Rail.SEPA_INSTANT, 100, debtor_agent_bic="NOT A BIC"))


def test_long_texts_are_cut_to_the_schema_limits() -> None:
    message = build_pacs008(
        _instruction("EUR", Rail.SEPA_INSTANT, 100, reference="r" * 500, end_to_end_id="e" * 80)
    )
    root = ET.fromstring(message)
    assert len(root.findtext(".//p:RmtInf/p:Ustrd", namespaces=ns) or "") == 140
    assert len(root.findtext(".//p:EndToEndId", namespaces=ns) or "") == 35


@pytest.mark.parametrize(
    ("iso_status", "reason", "status"),
    [
        ("ACSC", None, "accepted"),
        ("ACCP", None, "accepted"),
        ("RJCT", "AC04", "rejected"),
        ("RJCT", "AM04", "rejected"),
        ("PDNG", None, "pending"),
    ],
)
def test_pacs002_status_reports(iso_status: str, reason: str | None, status: str) -> None:
    report = build_pacs002(
        message_id="RPT-1",
        original_message_id="KVR-MSG-1",
        end_to_end_id="tr_01JD3EXAMPLE",
        iso_status=iso_status,
        reason_code=reason,
        created_at=now,
    )
    (parsed,) = parse_pacs002(report)
    assert (parsed.end_to_end_id, parsed.status, parsed.reason_code, parsed.iso_status) == (
        "tr_01JD3EXAMPLE",
        status,
        reason,
        iso_status,
    )


def test_other_documents_are_not_status_reports() -> None:
    with pytest.raises(InvalidMessage, match=r"not a pacs\.002"):
        parse_pacs002(build_pacs008(_instruction("EUR", Rail.SEPA_INSTANT, 100)))
    with pytest.raises(InvalidMessage, match="bytes"):
        parse_pacs002(b"<x/>" * 100_000)
