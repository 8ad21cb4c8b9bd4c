"""Bacs Direct Debit's rules: a sort code and account number passing VocaLink's modulus check
are accepted with the sort code as six digits; a failing modulus, a malformed sort code, a
missing or unknown field are refused naming the field; the scheme is GBP; its reason codes
say which failures end the mandate."""

from __future__ import annotations

import datetime

import msgspec
import pytest

from rails.bank_details import InvalidBankDetails
from rails.collections.bacs_dd import BacsDirectDebit, bacs_text
from rails.collections.provider import CollectionRequest, ProviderName

scheme = BacsDirectDebit()


def test_details_passing_the_modulus_check_are_accepted() -> None:
    details = scheme.validate_bank_details({"sort_code": "08-99-99", "account_number": "66374958"})
    assert details == {"sort_code": "089999", "account_number": "66374958"}


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"sort_code": "089999", "account_number": "66374959"}, "bank_details.account_number"),
        ({"sort_code": "08999", "account_number": "66374958"}, "bank_details.sort_code"),
        ({"sort_code": "089999"}, "bank_details.account_number"),
        ({"sort_code": "089999", "account_number": "66374958", "bic": "x"}, "bank_details.bic"),
    ],
)
def test_bad_bank_details_are_refused_naming_the_field(given: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidBankDetails) as raised:
        scheme.validate_bank_details(given)
    assert raised.value.field == field


def test_the_scheme_collects_sterling() -> None:
    assert scheme.name is ProviderName.BACS_DD
    assert scheme.currency == "GBP"


@pytest.mark.parametrize(
    ("code", "fatal"),
    [("1", True), ("B", True), ("6", True), ("0", False), ("4", False), ("Z", False)],
)
def test_reason_codes_say_which_failures_end_the_mandate(code: str, fatal: bool) -> None:
    assert scheme.is_mandate_fatal(code) is fatal
    assert scheme.reason_description(code).endswith(".")


def test_a_runs_message_is_one_debit_record_per_collection() -> None:
    request = CollectionRequest(
        collection_id=5,
        mandate_id=3,
        mandate_provider_reference="SBX-M-00000000000000000000003",
        mandate_signed_at=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
        currency="GBP",
        amount_minor=1_999,
        reference="gym",
        end_to_end_id="E2E-5",
        sequence_type="first",
        bank_details={"sort_code": "089999", "account_number": "66374958"},
        account_holder_name="Zoë O'Brien-Smith & Co",
        collection_date=datetime.date(2026, 3, 2),
    )
    now = datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC)
    message = scheme.collection_message([request], created_at=now)
    assert message is not None
    record = msgspec.json.decode(message)
    assert record == {
        "sort_code": "089999",
        "account_number": "66374958",
        "transaction_code": "01",
        "amount_pence": 1_999,
        "reference": "000000000000000003",
        "payer_name": "ZOE O BRIEN-SMITH",
        "processing_date": "2026-03-02",
    }
    assert scheme.collection_message([], created_at=now) is None


def test_bacs_text_is_upper_case_bacs_characters_at_most_18() -> None:
    assert bacs_text("Łukasz Żółć-Nowak, junior") == "LUKASZ ZOLC-NOWAK"
