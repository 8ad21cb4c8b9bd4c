"""Bank details are validated per corridor and a failure names the field: SEPA IBAN and BIC
(schwifty), UK sort code and account number with VocaLink's modulus check (the standard
test vectors of VocaLink's specification), and Indonesian bank code and account number."""

from __future__ import annotations

import pytest

from rails.bank_details import (
    EuBankDetails,
    IdBankDetails,
    InvalidBankDetails,
    UkBankDetails,
    validate_bank_details,
)

# VocaLink "Validating account numbers" test cases: (sort code, account, valid).
vocalink_vectors = [
    ("089999", "66374958", True),
    ("107999", "88837491", True),
    ("202959", "63748472", True),
    ("871427", "46238510", True),
    ("872427", "46238510", True),
    ("871427", "09123496", True),
    ("871427", "99123496", True),
    ("820000", "73688637", True),
    ("827999", "73988638", True),
    ("827101", "28748352", True),
    ("134020", "63849203", True),
    ("118765", "64371389", True),
    ("200915", "41011166", True),
    ("938611", "07806039", True),
    ("938600", "42368003", True),
    ("938063", "55065200", True),
    ("772798", "99345694", True),
    ("086090", "06774744", True),
    ("309070", "02355688", True),
    ("309070", "12345668", True),
    ("309070", "12345677", True),
    ("309070", "99345694", True),
    ("938063", "15764273", False),
    ("938063", "15764264", False),
    ("938063", "15763217", False),
    ("118765", "64371388", False),
    ("089999", "66374959", False),
    ("107999", "88837493", False),
    ("074456", "12345112", True),
    ("070116", "34012583", True),
    ("074456", "11104102", True),
    ("180002", "00000190", True),
]


@pytest.mark.parametrize(("sort_code", "account", "valid"), vocalink_vectors)
def test_uk_modulus_check(sort_code: str, account: str, valid: bool) -> None:
    details = {"sort_code": sort_code, "account_number": account}
    if valid:
        assert validate_bank_details(country="GB", details=details) == UkBankDetails(
            sort_code=sort_code, account_number=account
        )
    else:
        with pytest.raises(InvalidBankDetails) as raised:
            validate_bank_details(country="GB", details=details)
        assert raised.value.field == "bank_details.account_number"


@pytest.mark.parametrize(
    ("details", "field"),
    [
        ({"sort_code": "08999", "account_number": "66374958"}, "bank_details.sort_code"),
        ({"sort_code": "08-99-99", "account_number": "6637495"}, "bank_details.account_number"),
        ({"sort_code": "08-99-99"}, "bank_details.account_number"),
        ({"sort_code": "089999", "account_number": "66374958", "iban": "x"}, "bank_details.iban"),
    ],
)
def test_uk_details_name_the_bad_field(details: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidBankDetails) as raised:
        validate_bank_details(country="GB", details=details)
    assert raised.value.field == field


def test_sepa_details() -> None:
    valid = validate_bank_details(
        country="DE", details={"iban": "DE89 3704 0044 0532 0130 00", "bic": "COBADEFFXXX"}
    )
    assert valid == EuBankDetails(iban="DE89370400440532013000", bic="COBADEFFXXX")
    cases = [
        ({"iban": "DE89370400440532013001", "bic": "COBADEFFXXX"}, "DE", "bank_details.iban"),
        ({"iban": "DE89370400440532013000", "bic": "COBAFRPP"}, "DE", "bank_details.bic"),
        ({"iban": "DE89370400440532013000", "bic": "NOTABIC"}, "DE", "bank_details.bic"),
        ({"iban": "DE89370400440532013000", "bic": "COBADEFFXXX"}, "FR", "bank_details.iban"),
        ({"bic": "COBADEFFXXX"}, "DE", "bank_details.iban"),
    ]
    for details, country, field in cases:
        with pytest.raises(InvalidBankDetails) as raised:
            validate_bank_details(country=country, details=details)
        assert raised.value.field == field, details


def test_indonesian_details() -> None:
    valid = validate_bank_details(
        country="ID", details={"bank_code": "014", "account_number": "1234567890"}
    )
    assert valid == IdBankDetails(
        bank_code="014", account_number="1234567890", bank_name="Bank Central Asia"
    )
    for details, field in [
        ({"bank_code": "999", "account_number": "1234567890"}, "bank_details.bank_code"),
        ({"bank_code": "014", "account_number": "12AB"}, "bank_details.account_number"),
        ({"bank_code": "014", "account_number": "1" * 21}, "bank_details.account_number"),
    ]:
        with pytest.raises(InvalidBankDetails) as raised:
            validate_bank_details(country="ID", details=details)
        assert raised.value.field == field


def test_unknown_corridors_are_refused() -> None:
    with pytest.raises(InvalidBankDetails) as raised:
        validate_bank_details(country="US", details={})
    assert raised.value.field == "country"
