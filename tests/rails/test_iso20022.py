"""Every pacs.008 Kovra builds is valid against the official ISO 20022 XSD, though the builder
no longer checks it at run time: over every rail, every kind of bank details, currencies
with 0 to 5 minor units, amounts up to the schema's 18 digits, and free texts short, at and
past their length limits, in any script and full of XML specials, each message validates
and reads back as what it was built from (texts stripped and cut to their limit, any
character XML cannot carry replaced by U+FFFD). Values the schema would refuse (a bad BIC
or currency, an amount or minor units out of range, a UETR not of version 4, a moment not
in UTC) are refused when the instruction is made. pacs.002 status reports, for which no
official XSD ships here, are well-formed for any input and read back into accepted,
rejected (with the ISO reason) or pending.

The strategies here (bank details, texts, amounts) serve `test_pain001` too."""

from __future__ import annotations

import datetime
import functools
import random
import uuid
import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree
from schwifty import IBAN

from ledger.invariants import InvariantViolation
from rails.bank_details import (
    BankDetails,
    EuBankDetails,
    IdBankDetails,
    InvalidBankDetails,
    UkBankDetails,
    indonesian_banks,
    sepa_countries,
    validate_bank_details,
)
from rails.corridors import Rail
from rails.iso20022 import (
    InvalidMessage,
    PayoutInstruction,
    amount_digits_max,
    build_pacs002,
    build_pacs008,
    identifier_length_max,
    minor_units_max,
    parse_pacs002,
    text_length_max,
    validate,
)
from tests.rails.test_bank_details import vocalink_vectors

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
amount_bound_minor = 10**amount_digits_max  # Exclusive.
sepa_samples = 300
specials = "&<>\"']]>"


def _sepa_details(seed: int) -> EuBankDetails | None:
    """A random IBAN of a SEPA country's bank, with that bank's BIC, as the API admits them."""
    country = sorted(sepa_countries)[seed % len(sepa_countries)]
    try:
        iban = IBAN.random(country_code=country, random=random.Random(seed))
        if iban.bic is None:
            return None
        details = validate_bank_details(
            country=country, details={"iban": iban.compact, "bic": iban.bic.compact}
        )
    except (ValueError, InvalidBankDetails):
        return None  # A bank without a BIC in the registry, or one abroad: not a SEPA payee.
    assert isinstance(details, EuBankDetails)
    return details


eu_details = st.sampled_from(
    [details for seed in range(sepa_samples) if (details := _sepa_details(seed)) is not None]
)
uk_details = st.sampled_from(
    [
        validate_bank_details(country="GB", details={"sort_code": code, "account_number": number})
        for code, number, valid in vocalink_vectors
        if valid
    ]
)
id_details = st.builds(
    lambda code, number: validate_bank_details(
        country="ID", details={"bank_code": code, "account_number": number}
    ),
    st.sampled_from(sorted(indonesian_banks)),
    st.from_regex(r"[0-9]{5,20}", fullmatch=True),
)
bank_details: st.SearchStrategy[BankDetails] = st.one_of(eu_details, uk_details, id_details)

# What the API admits in a name or a reference: any text without C0 controls. Drawn often:
# XML's specials, characters XML cannot carry at all, and some beyond the ASCII range.
c0_controls = [chr(code) for code in range(0x20)]
text_characters = st.one_of(
    st.sampled_from(specials),
    st.sampled_from(["\ufffe", "\uffff", "\ud800", "\udfff", "\x7f", "\x85", "\u00a0"]),
    st.sampled_from(["é", "ß", "中", "ü", "Ω", "\u200f", "\U0001f4b8", "\U00010348"]),
    st.characters(exclude_characters=c0_controls),
)


def texts(limit: int) -> st.SearchStrategy[str]:
    """Free texts short, just under, at and past `limit`, and all blank."""
    return st.one_of(
        st.text(text_characters, max_size=limit // 4),
        st.text(text_characters, min_size=limit - 2, max_size=limit + 3),
        st.text(st.sampled_from(" \u00a0\u3000"), max_size=3),
    )


currencies = st.from_regex(r"[A-Z]{3}", fullmatch=True)
units = st.integers(min_value=0, max_value=minor_units_max)
amounts = st.one_of(
    st.integers(min_value=0, max_value=amount_bound_minor - 1),
    st.sampled_from([0, 1, 10**minor_units_max - 1, amount_bound_minor - 1]),
)
bics = st.from_regex(r"[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}(?:[A-Z0-9]{3})?", fullmatch=True)
moments = st.datetimes(
    min_value=datetime.datetime(2000, 1, 1),
    max_value=datetime.datetime(2199, 12, 31),
    timezones=st.just(datetime.UTC),
)


@functools.cache
def _xml_carries(character: str) -> bool:
    """Whether an XML document can hold the character at all, as libxml2 judges it."""
    try:
        etree.fromstring(f"<a>&#x{ord(character):x};</a>")
    except etree.XMLSyntaxError:
        return False
    return True


def as_carried(text: str, limit: int) -> str:
    """What a message holds of a free text: what XML cannot carry replaced, surrounding
    whitespace dropped, cut to `limit`, and a dash for nothing."""
    carried = "".join(character if _xml_carries(character) else "\ufffd" for character in text)
    return carried.strip()[:limit] or "-"


def _instruction(currency: str, rail: Rail, amount: int, /, **fields: object) -> PayoutInstruction:
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


def creditor_account(details: BankDetails) -> str:
    """The account a message names for the creditor."""
    match details:
        case EuBankDetails(iban=iban):
            return iban
        case UkBankDetails(account_number=number) | IdBankDetails(account_number=number):
            return number


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
    validate(message, "pacs.008.001.08.xsd")
    root = ET.fromstring(message)
    tx = root.find("p:FIToFICstmrCdtTrf/p:CdtTrfTxInf", ns)
    assert tx is not None
    settled = tx.find("p:IntrBkSttlmAmt", ns)
    assert settled is not None
    assert settled.get("Ccy") == currency
    assert settled.text == f"{amount / 100:.2f}"
    assert tx.findtext("p:PmtId/p:EndToEndId", namespaces=ns) == "tr_01JD3EXAMPLE"
    assert tx.findtext("p:RmtInf/p:Ustrd", namespaces=ns) == "INV-2026-0042"


@settings(max_examples=300)
@given(
    rail=st.sampled_from(Rail),
    currency=currencies,
    minor_units=units,
    amount=amounts,
    details=bank_details,
    message_id=texts(identifier_length_max),
    end_to_end_id=texts(identifier_length_max),
    debtor_name=texts(text_length_max),
    creditor_name=texts(text_length_max),
    reference=texts(text_length_max),
    debtor_agent_bic=bics,
    uetr=st.uuids(version=4),
    created_at=moments,
)
def test_every_pacs008_is_valid_and_reads_back_as_built(
    rail: Rail,
    currency: str,
    minor_units: int,
    amount: int,
    details: BankDetails,
    message_id: str,
    end_to_end_id: str,
    debtor_name: str,
    creditor_name: str,
    reference: str,
    debtor_agent_bic: str,
    uetr: uuid.UUID,
    created_at: datetime.datetime,
) -> None:
    message = build_pacs008(
        PayoutInstruction(
            message_id=message_id,
            end_to_end_id=end_to_end_id,
            uetr=uetr,
            rail=rail,
            currency=currency,
            amount_minor=amount,
            minor_units=minor_units,
            debtor_name=debtor_name,
            debtor_agent_bic=debtor_agent_bic,
            creditor_name=creditor_name,
            creditor_details=details,
            reference=reference,
            created_at=created_at,
        )
    )
    validate(message, "pacs.008.001.08.xsd")
    root = ET.fromstring(message)

    def text(path: str) -> str | None:
        return root.findtext(f"p:FIToFICstmrCdtTrf/{path}", namespaces=ns)

    assert text("p:GrpHdr/p:MsgId") == as_carried(message_id, identifier_length_max)
    tx = "p:CdtTrfTxInf"
    assert text(f"{tx}/p:PmtId/p:EndToEndId") == as_carried(end_to_end_id, identifier_length_max)
    assert text(f"{tx}/p:PmtId/p:UETR") == str(uetr)
    assert text(f"{tx}/p:Dbtr/p:Nm") == as_carried(debtor_name, text_length_max)
    assert text(f"{tx}/p:Cdtr/p:Nm") == as_carried(creditor_name, text_length_max)
    assert text(f"{tx}/p:RmtInf/p:Ustrd") == as_carried(reference, text_length_max)
    settled = root.find(f"p:FIToFICstmrCdtTrf/{tx}/p:IntrBkSttlmAmt", ns)
    assert settled is not None
    assert settled.get("Ccy") == currency
    assert Decimal(settled.text or "") == Decimal(amount).scaleb(-minor_units)
    accounts = [
        element.text
        for element in root.iterfind(f"p:FIToFICstmrCdtTrf/{tx}/p:CdtrAcct/p:Id//*", ns)
        if element.text
    ]
    assert accounts == [creditor_account(details)]


def test_xml_specials_are_escaped_and_read_back() -> None:
    tricky = "Smith & Sons <Ltd> \"quoted\" 'single' ]]> &amp; </Ustrd>"
    message = build_pacs008(
        _instruction("EUR", Rail.SEPA_INSTANT, 100, reference=tricky, creditor_name=tricky)
    )
    validate(message, "pacs.008.001.08.xsd")
    assert b"<Ltd>" not in message
    assert b"</Ustrd> " not in message
    assert b"&amp;amp;" in message  # The text's own "&amp;" is escaped, not taken as markup.
    root = ET.fromstring(message)
    assert root.findtext(".//p:RmtInf/p:Ustrd", namespaces=ns) == tricky
    assert root.findtext(".//p:Cdtr/p:Nm", namespaces=ns) == tricky


def test_characters_xml_cannot_carry_are_replaced() -> None:
    """Texts stored before the API refused control characters still make a valid message."""
    message = build_pacs008(
        _instruction("EUR", Rail.SEPA_INSTANT, 100, reference="a\x00b\x1bc\uffffd\ud800e")
    )
    validate(message, "pacs.008.001.08.xsd")
    root = ET.fromstring(message)
    reference = root.findtext(".//p:RmtInf/p:Ustrd", namespaces=ns)
    assert reference == "a\ufffdb\ufffdc\ufffdd\ufffde"


def test_long_texts_are_cut_to_the_schema_limits() -> None:
    message = build_pacs008(
        _instruction("EUR", Rail.SEPA_INSTANT, 100, reference="r" * 500, end_to_end_id="e" * 80)
    )
    root = ET.fromstring(message)
    assert len(root.findtext(".//p:RmtInf/p:Ustrd", namespaces=ns) or "") == 140
    assert len(root.findtext(".//p:EndToEndId", namespaces=ns) or "") == 35


@pytest.mark.parametrize(
    "fields",
    [
        {"debtor_agent_bic": "NOT A BIC"},
        {"debtor_agent_bic": "kovrgb2l"},
        {"currency": "eur"},
        {"currency": "EURO"},
        {"minor_units": minor_units_max + 1},
        {"minor_units": -1},
        {"amount_minor": -1},
        {"amount_minor": amount_bound_minor},
        {"uetr": uuid.uuid1()},
        {"created_at": now.replace(tzinfo=None)},
        {"created_at": now.astimezone(datetime.timezone(datetime.timedelta(hours=7)))},
    ],
)
def test_values_the_schema_would_refuse_are_refused_when_the_instruction_is_made(
    fields: dict[str, object],
) -> None:
    with pytest.raises(InvariantViolation):
        _instruction("EUR", Rail.SEPA_INSTANT, 100, **fields)


def test_the_schema_itself_refuses_what_instructions_refuse() -> None:
    """The checks stand for the schema's own rules: a message carrying such a value, made by
    hand from a valid one, is refused by the official XSD."""
    uetr = uuid.uuid4()
    valid = build_pacs008(
        _instruction("EUR", Rail.SEPA_INSTANT, 100, debtor_agent_bic="KOVRGB2L", uetr=uetr)
    )
    validate(valid, "pacs.008.001.08.xsd")
    amount = b">1.00</IntrBkSttlmAmt>"
    swaps = [
        (b"<BICFI>KOVRGB2L</BICFI>", b"<BICFI>NOT A BIC</BICFI>"),
        (b'Ccy="EUR"', b'Ccy="eur"'),
        (amount, b">0.000001</IntrBkSttlmAmt>"),  # Six minor units.
        (amount, b">-1.00</IntrBkSttlmAmt>"),
        (amount, f">{amount_bound_minor}</IntrBkSttlmAmt>".encode()),
        (str(uetr).encode(), str(uuid.uuid1()).encode()),
    ]
    for old, new in swaps:
        assert old in valid
        with pytest.raises(InvalidMessage):
            validate(valid.replace(old, new), "pacs.008.001.08.xsd")


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


@settings(max_examples=200)
@given(
    message_id=texts(identifier_length_max),
    original_message_id=texts(identifier_length_max),
    end_to_end_id=texts(identifier_length_max),
    rejected=st.booleans(),
    reason=st.from_regex(r"[A-Z0-9]{4}", fullmatch=True),
    created_at=moments,
)
def test_every_pacs002_is_well_formed_and_reads_back(
    message_id: str,
    original_message_id: str,
    end_to_end_id: str,
    rejected: bool,
    reason: str,
    created_at: datetime.datetime,
) -> None:
    report = build_pacs002(
        message_id=message_id,
        original_message_id=original_message_id,
        end_to_end_id=end_to_end_id,
        iso_status="RJCT" if rejected else "ACSC",
        reason_code=reason if rejected else None,
        created_at=created_at,
    )
    (parsed,) = parse_pacs002(report)
    assert parsed.end_to_end_id == as_carried(end_to_end_id, identifier_length_max)
    assert (parsed.status, parsed.reason_code) == (
        ("rejected", reason) if rejected else ("accepted", None)
    )
    root = ET.fromstring(report)
    pacs002_ns = {"p": root.tag[1:].split("}")[0]}
    for path, text in [
        ("p:FIToFIPmtStsRpt/p:GrpHdr/p:MsgId", message_id),
        ("p:FIToFIPmtStsRpt/p:TxInfAndSts/p:OrgnlGrpInf/p:OrgnlMsgId", original_message_id),
    ]:
        assert root.findtext(path, namespaces=pacs002_ns) == as_carried(text, identifier_length_max)


def test_other_documents_are_not_status_reports() -> None:
    with pytest.raises(InvalidMessage, match=r"not a pacs\.002"):
        parse_pacs002(build_pacs008(_instruction("EUR", Rail.SEPA_INSTANT, 100)))
    with pytest.raises(InvalidMessage, match="bytes"):
        parse_pacs002(b"<x/>" * 100_000)
