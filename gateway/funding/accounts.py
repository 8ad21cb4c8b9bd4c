"""The platform's settlement bank accounts, one per currency: where tenants send money to
fund their wallets (the funding instructions show it), what the currency's
REGIONAL_SETTLEMENT ledger account mirrors, and the account bank statements must be for.

Configured as JSON keyed by currency (`KOVRA_SETTLEMENT_ACCOUNTS`), each value an account's
bank details in its country's form, and optionally `holder_name`:

- `{"iban", "bic"}` (EUR, SEK, DKK and any SEPA account), checked by `rails.bank_details`;
- `{"sort_code", "account_number"}` (GBP), with the VocaLink modulus check;
- `{"bank_code", "account_number"}` (IDR: a Bank Indonesia code Kovra knows; NGN: a
  three-digit CBN bank code and a ten-digit NUBAN whose check digit holds);
- `{"routing_number", "account_number"}` (USD: an ABA routing number whose checksum holds,
  an account number of 4 to 17 digits).

Every bad value is reported at start, naming the currency and the field. Unset, the sandbox
has plausible valid accounts (`sandbox_accounts`); production has none, and a currency
without one has no funding instructions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec
from stdnum.us import rtn

from ledger.currencies import CurrencyRegistry
from rails.bank_details import (
    InvalidBankDetails,
    field_length_max,
    validate_eu,
    validate_id,
    validate_uk,
)
from rails.collections.nuban import is_valid_nuban

variable_name = "KOVRA_SETTLEMENT_ACCOUNTS"
holder_name_default = "Kovra Payments Ltd"
holder_name_length_max = 70
_us_account_digits = (4, 17)


class SettlementAccount(msgspec.Struct, frozen=True, kw_only=True):
    """One settlement bank account: its currency, holder and normalised bank details."""

    currency: str
    holder_name: str
    bank_details: dict[str, str]

    def identifies(self, account: str) -> bool:
        """Whether a statement's account identification (an IBAN, or the bank's own account
        id, compacted and in capitals) names this account."""
        details = self.bank_details
        if "iban" in details:
            return account == details["iban"]
        number = details["account_number"]
        if "sort_code" in details:
            local = details["sort_code"] + number
            # A UK IBAN ends with the sort code and the account number.
            return account in (local, number) or (account[:2] == "GB" and account.endswith(local))
        return account == number


def _digits(details: Mapping[str, object], name: str, lengths: tuple[int, int]) -> str:
    value = details.get(name)
    if not isinstance(value, str) or not (value.isascii() and value.isdigit()):
        raise InvalidBankDetails(f"bank_details.{name}", f"bank_details.{name} is digits only")
    if not lengths[0] <= len(value) <= lengths[1]:
        raise InvalidBankDetails(
            f"bank_details.{name}", f"bank_details.{name} is {lengths[0]} to {lengths[1]} digits"
        )
    return value


def _only(details: Mapping[str, object], names: tuple[str, ...]) -> None:
    for unknown in sorted(set(details) - set(names)):
        raise InvalidBankDetails(f"bank_details.{unknown}", f"{unknown} is not a field here")


def validate_us(details: Mapping[str, object]) -> dict[str, str]:
    _only(details, ("routing_number", "account_number"))
    routing = _digits(details, "routing_number", (9, 9))
    if not rtn.is_valid(routing):
        raise InvalidBankDetails(
            "bank_details.routing_number", "the ABA routing number's checksum does not hold"
        )
    account = _digits(details, "account_number", _us_account_digits)
    return {"routing_number": routing, "account_number": account}


def validate_ng(details: Mapping[str, object]) -> dict[str, str]:
    """A CBN three-digit bank code and a NUBAN account number, its check digit holding."""
    _only(details, ("bank_code", "account_number"))
    bank_code = _digits(details, "bank_code", (3, 3))
    account = _digits(details, "account_number", (10, 10))
    if not is_valid_nuban(institution_code=bank_code, account_number=account):
        raise InvalidBankDetails(
            "bank_details.account_number", "the NUBAN check digit does not hold for this bank"
        )
    return {"bank_code": bank_code, "account_number": account}


def _validated(currency: str, details: Mapping[str, object]) -> dict[str, str]:
    fields = set(details)
    if "iban" in fields:
        iban = str(details.get("iban", ""))
        checked = validate_eu(details, country="".join(iban.split())[:2].upper())
        return {"iban": checked.iban, "bic": checked.bic}
    if "sort_code" in fields:
        uk = validate_uk(details)
        return {"sort_code": uk.sort_code, "account_number": uk.account_number}
    if "routing_number" in fields:
        return validate_us(details)
    if "bank_code" in fields and currency == "NGN":
        return validate_ng(details)
    if "bank_code" in fields:
        indonesian = validate_id(details)
        return {"bank_code": indonesian.bank_code, "account_number": indonesian.account_number}
    raise InvalidBankDetails(
        "bank_details",
        "give iban and bic, sort_code and account_number, bank_code and account_number,"
        " or routing_number and account_number",
    )


def settlement_account(currency: str, value: object) -> SettlementAccount:
    """One configured account, or `InvalidBankDetails` naming the field at fault."""
    if not isinstance(value, dict):
        raise InvalidBankDetails("bank_details", "each currency's account is a JSON object")
    details = dict(value)
    holder = details.pop("holder_name", holder_name_default)
    if not isinstance(holder, str) or not 0 < len(holder.strip()) <= holder_name_length_max:
        raise InvalidBankDetails(
            "holder_name", f"holder_name is 1 to {holder_name_length_max} characters"
        )
    for name, field in details.items():
        if isinstance(field, str) and len(field) > field_length_max:
            raise InvalidBankDetails(f"bank_details.{name}", f"bank_details.{name} is too long")
    return SettlementAccount(
        currency=currency, holder_name=holder.strip(), bank_details=_validated(currency, details)
    )


def parse_accounts(text: str) -> tuple[tuple[SettlementAccount, ...], list[str]]:
    """The accounts `text` configures, and a problem for each bad value (naming the
    variable, the currency and the field)."""
    try:
        decoded = msgspec.json.decode(text)
    except msgspec.DecodeError as error:
        return (), [f"{variable_name} is not JSON: {error}"]
    if not isinstance(decoded, dict):
        return (), [f"{variable_name} must be a JSON object keyed by currency"]
    accounts: list[SettlementAccount] = []
    problems: list[str] = []
    for currency, value in sorted(decoded.items()):
        if not (len(currency) == 3 and currency.isascii() and currency.isupper()):
            problems.append(f"{variable_name}: {currency!r} is not an ISO 4217 code in capitals")
            continue
        try:
            accounts.append(settlement_account(currency, value))
        except InvalidBankDetails as error:
            problems.append(f"{variable_name}: {currency}: {error.field}: {error.detail}")
    return tuple(accounts), problems


# Plausible, valid accounts for the sandbox (each passes the checks above).
sandbox_bank_details: Mapping[str, Mapping[str, str]] = {
    "EUR": {"iban": "DE89370400440532013000", "bic": "COBADEFFXXX"},
    "SEK": {"iban": "SE4550000000058398257466", "bic": "ESSESESS"},
    "DKK": {"iban": "DK5000400440116243", "bic": "DABADKKK"},
    "GBP": {"sort_code": "089999", "account_number": "66374958"},
    "USD": {"routing_number": "021000021", "account_number": "000123456789"},
    "IDR": {"bank_code": "014", "account_number": "1234567890"},
    "NGN": {"bank_code": "058", "account_number": "0000000018"},
}


def sandbox_accounts(currencies: CurrencyRegistry) -> tuple[SettlementAccount, ...]:
    """The sandbox's accounts in the enabled currencies it has one for."""
    return tuple(
        settlement_account(currency.code, dict(sandbox_bank_details[currency.code]))
        for currency in currencies.enabled()
        if currency.code in sandbox_bank_details
    )


def accounts_in_force(
    configured: Sequence[SettlementAccount] | None, *, sandbox: bool, currencies: CurrencyRegistry
) -> dict[str, SettlementAccount]:
    """The accounts by currency: those configured, else the sandbox's (none in production)."""
    if configured is None:
        configured = sandbox_accounts(currencies) if sandbox else ()
    enabled = {currency.code for currency in currencies.enabled()}
    return {account.currency: account for account in configured if account.currency in enabled}


def currencies_not_enabled(
    configured: Sequence[SettlementAccount] | None, enabled: Sequence[str]
) -> list[str]:
    """The configured accounts' currencies that the deployment does not enable."""
    return sorted({a.currency for a in configured or ()} - set(enabled))
