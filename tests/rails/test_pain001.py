"""Every pain.001 Kovra emits for a batch is valid against the official ISO 20022 XSD, for
each corridor's rail, with the group header's and payment block's number of transactions
and control sum matching the payments; an empty message is refused."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest

from rails.corridors import Rail
from rails.iso20022 import (
    BatchInstruction,
    BatchPayment,
    InvalidMessage,
    build_pain001,
    validate,
)
from tests.rails.test_iso20022 import now, recipients

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
