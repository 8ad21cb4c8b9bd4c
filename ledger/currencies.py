"""ISO 4217 currencies: numeric codes and minor units, and the set a deployment enables.

The ledger of every TigerBeetle account is the currency's ISO 4217 numeric code and amounts
are integers in its minor units, so these two facts come from the maintained `iso4217`
package rather than a hand-written table.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import msgspec
from iso4217 import Currency as Iso4217Currency

from ledger.errors import CurrencyNotEnabled, UnknownCurrency

currencies_enabled_default = ("EUR", "GBP", "USD", "IDR", "SEK", "DKK")
currencies_environment_variable = "KOVRA_CURRENCIES"
# The account-id layout gives the currency 24 bits; ISO numeric codes are three digits.
currency_number_max = 999


class Currency(msgspec.Struct, frozen=True, kw_only=True):
    """One ISO 4217 currency as the ledger uses it."""

    code: str
    number: int
    minor_units: int
    name: str


def _lookup_iso(code: str) -> Currency:
    normalized = code.strip().upper()
    try:
        iso = Iso4217Currency(normalized)
    except ValueError:
        raise UnknownCurrency(f"'{code}' is not an ISO 4217 currency code") from None
    if iso.exponent is None:
        raise UnknownCurrency(f"'{normalized}' has no minor units and cannot hold a balance")
    return Currency(
        code=normalized,
        number=int(iso.number),
        minor_units=int(iso.exponent),
        name=str(iso.currency_name),
    )


class CurrencyRegistry:
    """The currencies a Kovra deployment enables, looked up by code or ISO numeric code."""

    def __init__(self, codes: Iterable[str]) -> None:
        by_code: dict[str, Currency] = {}
        for code in codes:
            currency = _lookup_iso(code)
            by_code[currency.code] = currency
        if not by_code:
            raise UnknownCurrency("at least one currency must be enabled")
        self._by_code: Mapping[str, Currency] = by_code
        self._by_number: Mapping[int, Currency] = {c.number: c for c in by_code.values()}

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> CurrencyRegistry:
        """Build the registry from `KOVRA_CURRENCIES` (comma separated), else the defaults."""
        source = os.environ if environ is None else environ
        raw = source.get(currencies_environment_variable, "").strip()
        if not raw:
            return cls(currencies_enabled_default)
        return cls(part for part in raw.split(",") if part.strip())

    def get(self, code: str) -> Currency:
        """The enabled currency `code`; `UnknownCurrency` or `CurrencyNotEnabled` otherwise."""
        currency = self._by_code.get(code.strip().upper())
        if currency is not None:
            return currency
        iso = _lookup_iso(code)  # Raises UnknownCurrency for codes that are not ISO 4217.
        raise CurrencyNotEnabled(f"currency '{iso.code}' is not enabled on this deployment")

    def by_number(self, number: int) -> Currency:
        """The enabled currency whose ISO numeric code (the TigerBeetle ledger) is `number`."""
        currency = self._by_number.get(number)
        if currency is None:
            raise CurrencyNotEnabled(f"ledger {number} is not an enabled currency")
        return currency

    def enabled(self) -> tuple[Currency, ...]:
        """Every enabled currency, sorted by code."""
        return tuple(sorted(self._by_code.values(), key=lambda currency: currency.code))
