"""SEPA Direct Debit's rules and messages.

Bank details: a SEPA IBAN is accepted in compact form with its BIC, derived where the IBAN's
bank is in `schwifty`'s registry; a BIC of another country than the IBAN's, a bad IBAN
checksum, an IBAN outside SEPA, a missing BIC that cannot be derived, and unknown fields are
refused naming the field. The creditor is validated as a SEPA creditor identifier.

Messages: every pain.008 built, over any names (non-ASCII ones included), amounts,
references, sequence types and dates, is valid against the official pain.008.001.10 schema,
carries only SEPA's Latin characters in names and remittance, and adds up (count and control
sum); a run's message id is the same when the run is sent again, and differs between runs."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from rails.bank_details import InvalidBankDetails
from rails.collections.provider import CollectionRequest, ProviderName, SequenceType
from rails.collections.sandbox import mandate_reference
from rails.collections.sepa_dd import (
    SepaCreditor,
    SepaDirectDebit,
    build_pain008,
    pain008_namespace,
    sandbox_creditor,
    sepa_text,
)

schema_path = Path(__file__).resolve().parents[3] / "rails" / "schemas" / "pain.008.001.10.xsd"
schema = etree.XMLSchema(etree.parse(str(schema_path)))
scheme = SepaDirectDebit(sandbox_creditor)
ns = {"p": pain008_namespace}
sepa_latin = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/-?:().,'+ ")
debtor_accounts = [
    {"iban": "NL91ABNA0417164300", "bic": "ABNANL2A"},
    {"iban": "DE89370400440532013000", "bic": "COBADEFFXXX"},
    {"iban": "FR1420041010050500013M02606", "bic": "PSSTFRPPLIL"},
]
created_at = datetime.datetime(2026, 3, 1, 9, 30, tzinfo=datetime.UTC)


def test_a_sepa_iban_is_accepted_with_its_bic_derived_or_given() -> None:
    assert scheme.validate_bank_details({"iban": "DE89 3704 0044 0532 0130 00"}) == {
        "iban": "DE89370400440532013000",
        "bic": "COBADEFFXXX",
    }
    assert scheme.validate_bank_details({"iban": "NL91ABNA0417164300", "bic": "ABNANL2A"}) == {
        "iban": "NL91ABNA0417164300",
        "bic": "ABNANL2A",
    }


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"iban": "NL91ABNA0417164300", "bic": "COBADEFFXXX"}, "bank_details.bic"),
        ({"iban": "DE89370400440532013001"}, "bank_details.iban"),
        ({"iban": "SA0380000000608010167519", "bic": "RJHISARI"}, "bank_details.iban"),
        ({"iban": "NL91ABNA0417164300", "bic": "NOTABIC"}, "bank_details.bic"),
        ({"bic": "ABNANL2A"}, "bank_details.iban"),
        ({"iban": "NL91ABNA0417164300", "sort_code": "1"}, "bank_details.sort_code"),
    ],
)
def test_bad_bank_details_are_refused_naming_the_field(given: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidBankDetails) as raised:
        scheme.validate_bank_details(given)
    assert raised.value.field == field


def test_a_bic_that_cannot_be_derived_is_required() -> None:
    # An IBAN with a valid checksum whose bank code is in no registry schwifty ships.
    with pytest.raises(InvalidBankDetails) as raised:
        scheme.validate_bank_details({"iban": "MT84MALT011000012345MTLCAST001S"})
    assert raised.value.field in ("bank_details.bic", "bank_details.iban")


def test_the_scheme_collects_euro() -> None:
    assert scheme.name is ProviderName.SEPA_DD
    assert scheme.currency == "EUR"


@pytest.mark.parametrize(
    "changes",
    [
        {"identifier": "DE99ZZZ09999999999"},
        {"identifier": "not an identifier"},
        {"iban": "DE89370400440532013001"},
        {"bic": "ABNANL2A"},
        {"name": ""},
    ],
)
def test_a_bad_creditor_is_refused_at_construction(changes: dict[str, str]) -> None:
    fields = {
        "name": sandbox_creditor.name,
        "identifier": sandbox_creditor.identifier,
        "iban": sandbox_creditor.iban,
        "bic": sandbox_creditor.bic,
    }
    with pytest.raises(ValueError, match="SEPA creditor"):
        SepaCreditor(**(fields | changes))


def _request(
    index: int,
    *,
    name: str,
    amount_minor: int,
    reference: str,
    sequence_type: SequenceType,
    collection_date: datetime.date,
) -> CollectionRequest:
    return CollectionRequest(
        collection_id=1_000 + index,
        mandate_id=7,
        mandate_provider_reference=mandate_reference(7),
        mandate_signed_at=datetime.datetime(2026, 1, 2, 3, 4, tzinfo=datetime.UTC),
        currency="EUR",
        amount_minor=amount_minor,
        reference=reference,
        end_to_end_id=f"E2E-{index:08d}",
        sequence_type=sequence_type,
        bank_details=debtor_accounts[index % len(debtor_accounts)],
        account_holder_name=name,
        collection_date=collection_date,
    )


collection_requests = st.lists(
    st.tuples(
        st.text(min_size=0, max_size=90),
        st.integers(min_value=1, max_value=99_999_999_999),
        st.text(min_size=1, max_size=200),
        st.sampled_from(["first", "recurring"]),
        st.dates(min_value=datetime.date(2026, 1, 1), max_value=datetime.date(2027, 12, 31)),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=60)
@given(items=collection_requests)
def test_every_pain008_built_is_valid_against_the_official_schema(
    items: list[tuple[str, int, str, SequenceType, datetime.date]],
) -> None:
    requests = [
        _request(
            index,
            name=name,
            amount_minor=amount,
            reference=reference,
            sequence_type=sequence,
            collection_date=date,
        )
        for index, (name, amount, reference, sequence, date) in enumerate(items)
    ]
    message = build_pain008(sandbox_creditor, requests, created_at=created_at)
    document = etree.fromstring(message)
    assert schema.validate(document), schema.error_log
    texts = [
        element.text or ""
        for element in [
            *document.iterfind(".//p:Dbtr/p:Nm", ns),
            *document.iterfind(".//p:Ustrd", ns),
        ]
    ]
    assert all(set(text) <= sepa_latin for text in texts)
    header_count = document.findtext("p:CstmrDrctDbtInitn/p:GrpHdr/p:NbOfTxs", namespaces=ns)
    assert header_count == str(len(requests))
    control_sum = document.findtext("p:CstmrDrctDbtInitn/p:GrpHdr/p:CtrlSum", namespaces=ns)
    assert control_sum is not None
    assert int(control_sum.replace(".", "")) == sum(r.amount_minor for r in requests)
    sequences = [element.text for element in document.iterfind(".//p:PmtTpInf/p:SeqTp", ns)]
    assert set(sequences) == {
        {"first": "FRST", "recurring": "RCUR"}[r.sequence_type] for r in requests
    }


def test_a_run_sent_again_carries_the_same_message_id_and_another_run_another() -> None:
    def run(*indexes: int) -> str:
        requests = [
            _request(
                i,
                name="Zoë",
                amount_minor=100,
                reference="r",
                sequence_type="first",
                collection_date=datetime.date(2026, 4, 1),
            )
            for i in indexes
        ]
        message = build_pain008(sandbox_creditor, requests, created_at=created_at)
        found = etree.fromstring(message).findtext(
            "p:CstmrDrctDbtInitn/p:GrpHdr/p:MsgId", namespaces=ns
        )
        assert found is not None
        return found

    assert run(1, 2) == run(1, 2)
    assert run(1, 2) != run(1, 3)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Zoë Müller & Søn", "Zoe Muller Son"),
        ("李小龍", "LiXiaoLong"),
        ("\u200b\u0301", "NOTPROVIDED"),
        ("a_b@c", "a b c"),
    ],
)
def test_names_are_transliterated_to_sepa_latin(text: str, expected: str) -> None:
    assert sepa_text(text, length_max=70) == expected
