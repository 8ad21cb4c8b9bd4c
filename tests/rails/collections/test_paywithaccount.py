"""PayWithAccount's rules: a NUBAN valid at a known institution is accepted in canonical form;
an unknown bank code, a wrong length, a wrong check digit, a missing or an unknown field are
refused naming the field; the scheme is NGN; its reason codes say which failures end the
mandate, and it sends no file per run."""

from __future__ import annotations

import datetime

import msgspec
import pytest

from rails.bank_details import InvalidBankDetails
from rails.collections.paywithaccount import PayWithAccount
from rails.collections.provider import CollectionRequest, ProviderName

scheme = PayWithAccount()


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ({"bank_code": "011", "account_number": "0000014579"}, "0000014579"),
        ({"bank_code": " 058 ", "account_number": "0123456785 "}, "0123456785"),
        ({"bank_code": "090267", "account_number": "1234567893"}, "1234567893"),
    ],
)
def test_a_valid_nuban_at_a_known_institution_is_accepted(
    given: dict[str, str], canonical: str
) -> None:
    details = scheme.validate_bank_details(given)
    assert details == {"bank_code": given["bank_code"].strip(), "account_number": canonical}


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"bank_code": "999", "account_number": "0000014579"}, "bank_details.bank_code"),
        ({"bank_code": "011", "account_number": "0000014578"}, "bank_details.account_number"),
        ({"bank_code": "011", "account_number": "000001457"}, "bank_details.account_number"),
        ({"bank_code": "011", "account_number": "00000145X9"}, "bank_details.account_number"),
        ({"account_number": "0000014579"}, "bank_details.bank_code"),
        ({"bank_code": "011"}, "bank_details.account_number"),
        ({"bank_code": "011", "account_number": "0000014579", "iban": "x"}, "bank_details.iban"),
    ],
)
def test_bad_bank_details_are_refused_naming_the_field(given: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidBankDetails) as raised:
        scheme.validate_bank_details(given)
    assert raised.value.field == field


def test_the_scheme_collects_naira() -> None:
    assert scheme.name is ProviderName.PAYWITHACCOUNT
    assert scheme.currency == "NGN"


def test_reason_codes_say_which_failures_end_the_mandate() -> None:
    assert scheme.is_mandate_fatal("MNDCNL")
    assert scheme.is_mandate_fatal("07")
    assert not scheme.is_mandate_fatal("51")
    assert not scheme.is_mandate_fatal("ZZ")
    assert "insufficient funds" in scheme.reason_description("51")
    assert "Unknown" in scheme.reason_description("ZZ")


def test_a_runs_message_is_its_collect_requests_without_account_numbers() -> None:
    request = CollectionRequest(
        collection_id=5,
        mandate_id=3,
        mandate_provider_reference="SBX-M-3",
        mandate_signed_at=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
        currency="NGN",
        amount_minor=250_000,
        reference="rent March",
        end_to_end_id="E2E-5",
        sequence_type="recurring",
        bank_details={"bank_code": "011", "account_number": "0000014579"},
        account_holder_name="Ada Obi",
        collection_date=datetime.date(2026, 3, 1),
    )
    now = datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC)
    message = scheme.collection_message([request, request], created_at=now)
    assert message is not None
    assert b"0000014579" not in message
    lines = [msgspec.json.decode(line) for line in message.split(b"\n")]
    assert len(lines) == 2
    assert lines[0]["request_type"] == "collect"
    assert lines[0]["request_ref"] == "E2E-5"
    assert lines[0]["transaction"]["amount"] == 250_000
    assert lines[0]["transaction"]["transaction_ref_parent"] == "SBX-M-3"
    assert scheme.collection_message([], created_at=now) is None
