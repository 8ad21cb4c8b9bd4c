"""Bacs Direct Debit's rules: a sort code and account number passing VocaLink's modulus check
are accepted with the sort code as six digits; a failing modulus, a malformed sort code, a
missing or unknown field are refused naming the field; the scheme is GBP; its reason codes
say which failures end the mandate."""

from __future__ import annotations

import pytest

from rails.bank_details import InvalidBankDetails
from rails.collections.bacs_dd import BacsDirectDebit
from rails.collections.provider import ProviderName

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
