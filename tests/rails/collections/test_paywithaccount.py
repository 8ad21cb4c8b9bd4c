"""PayWithAccount's rules: a NUBAN valid at a known institution is accepted in canonical form;
an unknown bank code, a wrong length, a wrong check digit, a missing or an unknown field are
refused naming the field; the scheme is NGN; its reason codes say which failures end the
mandate, and it sends no file per run."""

from __future__ import annotations

import datetime

import pytest

from rails.bank_details import InvalidBankDetails
from rails.collections.paywithaccount import PayWithAccount
from rails.collections.provider import ProviderName

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


def test_a_run_sends_no_file() -> None:
    assert scheme.collection_message([], created_at=datetime.datetime.now(datetime.UTC)) is None
