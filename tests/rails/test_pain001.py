"""Every pain.001 Kovra emits for a batch is valid against the official ISO 20022 XSD, though
the builder no longer checks it at run time: for each corridor's rail, and over any rail,
currency and minor units, batches of one to a dozen payments with any kind of bank details,
amounts up to the schema's 18 digits in the control sum, and free texts at and past their
limits, in any script and full of XML specials; the group header's and payment block's
number of transactions and control sum match the payments, and every text reads back as
built (stripped, cut to its limit, what XML cannot carry replaced). An empty message is
refused, and so is a control sum past the schema's 18 digits."""

from __future__ import annotations

import datetime
import uuid
import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.invariants import InvariantViolation
from rails.bank_details import BankDetails
from rails.corridors import Rail
from rails.iso20022 import (
    BatchInstruction,
    BatchPayment,
    InvalidMessage,
    account_identifier_length_max,
    amount_digits_max,
    build_pain001,
    identifier_length_max,
    text_length_max,
    validate,
)
from tests.rails.test_iso20022 import (
    as_carried,
    bank_details,
    bics,
    creditor_account,
    currencies,
    moments,
    now,
    recipients,
    texts,
    units,
)

ns = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"}


def _instruction(currency: str, rail: Rail, amounts: list[int]) -> BatchInstruction:
    return BatchInstruction(
        message_id="KVRB-1",
        payment_information_id="KVRP-1",
        rail=rail,
        currency=currency,
        minor_units=2,
        initiating_party_name="Kovra Payments Ltd for Acme GmbH",
        debtor_name="Kovra Payments Ltd",
        debtor_account=f"KOVRA-{currency}-SETTLEMENT",
        debtor_agent_bic="KOVRGB2LXXX",
        created_at=now,
        payments=[
            BatchPayment(
                end_to_end_id=f"KVR{index:032x}",
                uetr=uuid.uuid4(),
                amount_minor=amount,
                creditor_name=f"Supplier {index}",
                creditor_details=recipients[currency],
                reference=f"INV-{index}",
            )
            for index, amount in enumerate(amounts)
        ],
    )


@pytest.mark.parametrize(
    ("currency", "rail"),
    [
        ("EUR", Rail.SEPA_INSTANT),
        ("EUR", Rail.SEPA_CREDIT_TRANSFER),
        ("GBP", Rail.FASTER_PAYMENTS),
        ("GBP", Rail.CHAPS),
        ("IDR", Rail.BI_FAST),
        ("IDR", Rail.RTGS),
    ],
)
def test_pain001_is_valid_with_matching_counts_and_sums(currency: str, rail: Rail) -> None:
    amounts = [1, 99, 123_456, 10_000_000_001]
    message = build_pain001(_instruction(currency, rail, amounts))
    validate(message, "pain.001.001.09.xsd")
    root = ET.fromstring(message)
    header = root.find("p:CstmrCdtTrfInitn/p:GrpHdr", ns)
    block = root.find("p:CstmrCdtTrfInitn/p:PmtInf", ns)
    assert header is not None
    assert block is not None
    expected_sum = Decimal(sum(amounts)).scaleb(-2)
    for part in (header, block):
        assert part.findtext("p:NbOfTxs", namespaces=ns) == str(len(amounts))
        assert Decimal(part.findtext("p:CtrlSum", default="", namespaces=ns)) == expected_sum
    instructed = [
        Decimal(element.text or "")
        for element in block.iterfind("p:CdtTrfTxInf/p:Amt/p:InstdAmt", ns)
    ]
    assert sum(instructed) == expected_sum


def test_an_empty_batch_message_is_refused() -> None:
    with pytest.raises(InvalidMessage):
        build_pain001(_instruction("EUR", Rail.SEPA_INSTANT, []))


def test_a_control_sum_past_the_schemas_digits_is_refused() -> None:
    half = 10**amount_digits_max // 2
    build_pain001(_instruction("EUR", Rail.SEPA_INSTANT, [half - 1, half]))
    with pytest.raises(InvariantViolation):
        build_pain001(_instruction("EUR", Rail.SEPA_INSTANT, [half, half]))


payments_max = 12
payments = st.builds(
    BatchPayment,
    end_to_end_id=texts(identifier_length_max),
    uetr=st.uuids(version=4),
    # Small enough that a dozen stay within the control sum's 18 digits, with the bounds.
    amount_minor=st.integers(min_value=0, max_value=10**17 - 1) | st.sampled_from([0, 1]),
    creditor_name=texts(text_length_max),
    creditor_details=bank_details,
    reference=texts(text_length_max),
)


@settings(max_examples=150)
@given(
    rail=st.sampled_from(Rail),
    currency=currencies,
    minor_units=units,
    message_id=texts(identifier_length_max),
    payment_information_id=texts(identifier_length_max),
    initiating_party_name=texts(text_length_max),
    debtor_name=texts(text_length_max),
    debtor_account=texts(account_identifier_length_max),
    debtor_agent_bic=bics,
    created_at=moments,
    batch=st.lists(payments, min_size=1, max_size=payments_max),
)
def test_every_pain001_is_valid_and_reads_back_as_built(
    rail: Rail,
    currency: str,
    minor_units: int,
    message_id: str,
    payment_information_id: str,
    initiating_party_name: str,
    debtor_name: str,
    debtor_account: str,
    debtor_agent_bic: str,
    created_at: datetime.datetime,
    batch: list[BatchPayment],
) -> None:
    message = build_pain001(
        BatchInstruction(
            message_id=message_id,
            payment_information_id=payment_information_id,
            rail=rail,
            currency=currency,
            minor_units=minor_units,
            initiating_party_name=initiating_party_name,
            debtor_name=debtor_name,
            debtor_account=debtor_account,
            debtor_agent_bic=debtor_agent_bic,
            created_at=created_at,
            payments=batch,
        )
    )
    validate(message, "pain.001.001.09.xsd")
    root = ET.fromstring(message)
    initiation = root.find("p:CstmrCdtTrfInitn", ns)
    assert initiation is not None

    def text(path: str) -> str | None:
        return initiation.findtext(path, namespaces=ns)

    assert text("p:GrpHdr/p:MsgId") == as_carried(message_id, identifier_length_max)
    assert text("p:GrpHdr/p:InitgPty/p:Nm") == as_carried(initiating_party_name, text_length_max)
    assert text("p:PmtInf/p:PmtInfId") == as_carried(payment_information_id, identifier_length_max)
    assert text("p:PmtInf/p:Dbtr/p:Nm") == as_carried(debtor_name, text_length_max)
    assert text("p:PmtInf/p:DbtrAcct/p:Id/p:Othr/p:Id") == as_carried(
        debtor_account, account_identifier_length_max
    )
    total = Decimal(sum(payment.amount_minor for payment in batch)).scaleb(-minor_units)
    for part in ("p:GrpHdr", "p:PmtInf"):
        assert text(f"{part}/p:NbOfTxs") == str(len(batch))
        assert Decimal(text(f"{part}/p:CtrlSum") or "") == total
    items = initiation.findall("p:PmtInf/p:CdtTrfTxInf", ns)
    assert [_read_back(item, currency, minor_units) for item in items] == [
        _as_built(payment) for payment in batch
    ]


def _read_back(item: ET.Element, currency: str, minor_units: int) -> tuple[object, ...]:
    """One credit transfer of a pain.001, as read: ids, amount, creditor, reference."""
    amount = item.find("p:Amt/p:InstdAmt", ns)
    assert amount is not None
    assert amount.get("Ccy") == currency
    accounts = [e.text for e in item.iterfind("p:CdtrAcct/p:Id//*", ns) if e.text]
    return (
        item.findtext("p:PmtId/p:EndToEndId", namespaces=ns),
        item.findtext("p:PmtId/p:UETR", namespaces=ns),
        Decimal(amount.text or "").scaleb(minor_units),
        item.findtext("p:Cdtr/p:Nm", namespaces=ns),
        accounts,
        item.findtext("p:RmtInf/p:Ustrd", namespaces=ns),
    )


def _as_built(payment: BatchPayment) -> tuple[object, ...]:
    """What a credit transfer should read back as."""
    details: BankDetails = payment.creditor_details
    return (
        as_carried(payment.end_to_end_id, identifier_length_max),
        str(payment.uetr),
        Decimal(payment.amount_minor),
        as_carried(payment.creditor_name, text_length_max),
        [creditor_account(details)],
        as_carried(payment.reference, text_length_max),
    )
