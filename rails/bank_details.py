"""Recipient bank details, validated per corridor before any money is held.

- EU (SEPA): IBAN (checksum, country format and bank registry via `schwifty`) and BIC (format
  via `schwifty`), the BIC's country matching the IBAN's.
- UK: a six-digit sort code and an eight-digit account number, with the VocaLink modulus
  check (`ukmodulus`, which ships VocaLink's weight and substitution tables).
- ID: a three-digit Bank Indonesia bank code from Kovra's table, and a 5 to 20 digit
  account number (Indonesian account numbers carry no national check digit).

A failure raises `InvalidBankDetails` naming the field, so the API can say which one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import msgspec
import ukmodulus
from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException

from ledger.errors import DomainError

sepa_countries = frozenset(
    {
        "AT",
        "BE",
        "BG",
        "CY",
        "CZ",
        "DE",
        "DK",
        "EE",
        "ES",
        "FI",
        "FR",
        "GR",
        "HR",
        "HU",
        "IE",
        "IS",
        "IT",
        "LI",
        "LT",
        "LU",
        "LV",
        "MC",
        "MT",
        "NL",
        "NO",
        "PL",
        "PT",
        "RO",
        "SE",
        "SI",
        "SK",
        "SM",
        "CH",
        "AD",
        "VA",
    }
)
# Bank Indonesia's three-digit codes (sandi bank) of the banks Kovra pays out to.
indonesian_banks: Mapping[str, str] = {
    "002": "Bank Rakyat Indonesia",
    "008": "Bank Mandiri",
    "009": "Bank Negara Indonesia",
    "011": "Bank Danamon",
    "013": "Bank Permata",
    "014": "Bank Central Asia",
    "016": "Maybank Indonesia",
    "019": "Bank Panin",
    "022": "Bank CIMB Niaga",
    "023": "Bank UOB Indonesia",
    "028": "Bank OCBC NISP",
    "031": "Citibank Indonesia",
    "046": "Bank DBS Indonesia",
    "050": "Standard Chartered Bank",
    "087": "Bank HSBC Indonesia",
    "147": "Bank Muamalat",
    "200": "Bank Tabungan Negara",
    "213": "Bank SMBC Indonesia",
    "426": "Bank Mega",
    "441": "Bank KB Bukopin",
    "451": "Bank Syariah Indonesia",
    "484": "Bank KEB Hana Indonesia",
    "490": "Bank Neo Commerce",
    "501": "Bank Digital BCA",
    "542": "Bank Jago",
}
_sort_code_pattern = re.compile(r"^\d{2}-?\d{2}-?\d{2}$")
_uk_account_pattern = re.compile(r"^\d{8}$")
_id_account_pattern = re.compile(r"^\d{5,20}$")
field_length_max = 64


class InvalidBankDetails(DomainError):
    code = "invalid_bank_details"
    field: str

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail, field=field)


class EuBankDetails(msgspec.Struct, frozen=True, kw_only=True):
    iban: str
    bic: str


class UkBankDetails(msgspec.Struct, frozen=True, kw_only=True):
    sort_code: str
    account_number: str


class IdBankDetails(msgspec.Struct, frozen=True, kw_only=True):
    bank_code: str
    account_number: str
    bank_name: str


BankDetails = EuBankDetails | UkBankDetails | IdBankDetails


def _field(details: Mapping[str, object], name: str) -> str:
    value = details.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InvalidBankDetails(f"bank_details.{name}", f"bank_details.{name} is required")
    if len(value) > field_length_max:
        raise InvalidBankDetails(f"bank_details.{name}", f"bank_details.{name} is too long")
    return value.strip()


def _only(details: Mapping[str, object], names: tuple[str, ...]) -> None:
    for unknown in sorted(set(details) - set(names)):
        raise InvalidBankDetails(
            f"bank_details.{unknown}", f"bank_details.{unknown} is not a field of this corridor"
        )


def validate_eu(details: Mapping[str, object], *, country: str) -> EuBankDetails:
    _only(details, ("iban", "bic"))
    try:
        iban = IBAN(_field(details, "iban"))
    except SchwiftyException as error:
        raise InvalidBankDetails("bank_details.iban", f"the IBAN is not valid: {error}") from None
    if iban.country_code not in sepa_countries or iban.country_code != country:
        raise InvalidBankDetails(
            "bank_details.iban", f"the IBAN is from {iban.country_code}, not {country}"
        )
    try:
        bic = BIC(_field(details, "bic"))
    except SchwiftyException as error:
        raise InvalidBankDetails("bank_details.bic", f"the BIC is not valid: {error}") from None
    if bic.country_code != iban.country_code:
        raise InvalidBankDetails("bank_details.bic", "the BIC's country differs from the IBAN's")
    return EuBankDetails(iban=iban.compact, bic=bic.compact)


def validate_uk(details: Mapping[str, object]) -> UkBankDetails:
    _only(details, ("sort_code", "account_number"))
    sort_code = _field(details, "sort_code")
    account = _field(details, "account_number")
    if not _sort_code_pattern.match(sort_code):
        raise InvalidBankDetails("bank_details.sort_code", "a sort code is six digits")
    if not _uk_account_pattern.match(account):
        raise InvalidBankDetails("bank_details.account_number", "an account number is 8 digits")
    digits = sort_code.replace("-", "")
    if not ukmodulus.validate_number(digits, account):
        raise InvalidBankDetails(
            "bank_details.account_number",
            "the account number fails the modulus check for this sort code",
        )
    return UkBankDetails(sort_code=digits, account_number=account)


def validate_id(details: Mapping[str, object]) -> IdBankDetails:
    _only(details, ("bank_code", "account_number"))
    bank_code = _field(details, "bank_code")
    account = _field(details, "account_number")
    name = indonesian_banks.get(bank_code)
    if name is None:
        raise InvalidBankDetails(
            "bank_details.bank_code",
            f"{bank_code!r} is not a Bank Indonesia code Kovra pays out to",
        )
    if not _id_account_pattern.match(account):
        raise InvalidBankDetails(
            "bank_details.account_number", "an Indonesian account number is 5 to 20 digits"
        )
    return IdBankDetails(bank_code=bank_code, account_number=account, bank_name=name)


def validate_bank_details(*, country: str, details: Mapping[str, object]) -> BankDetails:
    """The recipient's details for `country`'s corridor, normalised; or a named refusal."""
    if country == "GB":
        return validate_uk(details)
    if country == "ID":
        return validate_id(details)
    if country in sepa_countries:
        return validate_eu(details, country=country)
    raise InvalidBankDetails("country", f"Kovra does not pay out to {country!r}")
