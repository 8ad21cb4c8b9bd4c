"""`ledger.currencies` gives each enabled currency its ISO 4217 numeric code and minor units.

The registry takes codes in any case, refuses codes that are not ISO 4217 currencies with
minor units (`UnknownCurrency`, naming the code) and ISO currencies this deployment does not
enable (`CurrencyNotEnabled`), and is built from `KOVRA_CURRENCIES` or the default set.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from ledger.currencies import (
    Currency,
    CurrencyRegistry,
    currencies_enabled_default,
    currencies_environment_variable,
)
from ledger.errors import CurrencyNotEnabled, UnknownCurrency

default_codes = ["DKK", "EUR", "GBP", "IDR", "SEK", "USD"]


@pytest.mark.parametrize(
    ("code", "number", "minor_units"),
    [
        ("EUR", 978, 2),
        ("IDR", 360, 2),
        ("GBP", 826, 2),
        ("USD", 840, 2),
        ("SEK", 752, 2),
        ("DKK", 208, 2),
    ],
)
def test_default_currencies_have_their_iso_numbers_and_minor_units(
    code: str, number: int, minor_units: int
) -> None:
    registry = CurrencyRegistry.from_environment({})
    currency = registry.get(code)
    assert (currency.code, currency.number, currency.minor_units) == (code, number, minor_units)
    assert currency.name
    assert registry.by_number(number) == currency


def test_minor_units_other_than_two() -> None:
    registry = CurrencyRegistry(["JPY", "KWD"])
    assert registry.get("JPY") == Currency(code="JPY", number=392, minor_units=0, name="Yen")
    kwd = registry.get("KWD")
    assert (kwd.number, kwd.minor_units) == (414, 3)


@pytest.mark.parametrize("code", ["eur", "Eur", " eur ", "EUR"])
def test_codes_are_accepted_in_any_case(code: str) -> None:
    registry = CurrencyRegistry([code, "usd"])
    assert registry.get(code).code == "EUR"
    assert registry.get("USD").code == "USD"
    assert [c.code for c in registry.enabled()] == ["EUR", "USD"]


@pytest.mark.parametrize("code", ["ZZZ", "EURO", "", "978", "U$D"])
def test_unknown_codes_are_refused_naming_the_code(code: str) -> None:
    registry = CurrencyRegistry(["EUR"])
    with pytest.raises(UnknownCurrency) as raised:
        registry.get(code)
    assert f"'{code}'" in raised.value.detail
    assert raised.value.code == "unknown_currency"
    with pytest.raises(UnknownCurrency):
        CurrencyRegistry(["EUR", code])


@pytest.mark.parametrize("code", ["JPY", "KWD", "CHF", "chf"])
def test_iso_currencies_not_enabled_are_refused(code: str) -> None:
    registry = CurrencyRegistry.from_environment({})
    with pytest.raises(CurrencyNotEnabled) as raised:
        registry.get(code)
    assert code.upper() in raised.value.detail
    assert raised.value.code == "currency_not_enabled"


@pytest.mark.parametrize("code", ["XAU", "xag", "XXX", "XDR"])
def test_currencies_without_minor_units_are_refused(code: str) -> None:
    with pytest.raises(UnknownCurrency):
        CurrencyRegistry([code])
    with pytest.raises(UnknownCurrency):
        CurrencyRegistry(["EUR", code])
    with pytest.raises(UnknownCurrency):
        CurrencyRegistry(["EUR"]).get(code)


def test_from_environment_reads_kovra_currencies() -> None:
    assert currencies_environment_variable == "KOVRA_CURRENCIES"
    registry = CurrencyRegistry.from_environment({"KOVRA_CURRENCIES": " jpy, EUR ,,kwd,eur "})
    assert [c.code for c in registry.enabled()] == ["EUR", "JPY", "KWD"]
    with pytest.raises(CurrencyNotEnabled):
        registry.get("USD")


def test_from_environment_refuses_a_bad_kovra_currencies() -> None:
    with pytest.raises(UnknownCurrency):
        CurrencyRegistry.from_environment({"KOVRA_CURRENCIES": "EUR,ZZZ"})
    with pytest.raises(UnknownCurrency):
        CurrencyRegistry.from_environment({"KOVRA_CURRENCIES": "EUR,XAU"})


@pytest.mark.parametrize(
    "environ",
    [{}, {"KOVRA_CURRENCIES": ""}, {"KOVRA_CURRENCIES": "  "}, {"OTHER": "JPY"}],
)
def test_from_environment_defaults(environ: dict[str, str]) -> None:
    registry = CurrencyRegistry.from_environment(environ)
    assert [c.code for c in registry.enabled()] == default_codes
    assert sorted(currencies_enabled_default) == default_codes


def test_by_number() -> None:
    registry = CurrencyRegistry(["KWD", "EUR"])
    assert registry.by_number(414).code == "KWD"
    assert registry.by_number(978).code == "EUR"
    for number in (840, 0, 999, 1 << 24):
        with pytest.raises(CurrencyNotEnabled):
            registry.by_number(number)


def test_enabled_is_sorted_by_code_without_duplicates() -> None:
    registry = CurrencyRegistry(["USD", "idr", "EUR", "usd", "GBP"])
    enabled = registry.enabled()
    assert [c.code for c in enabled] == ["EUR", "GBP", "IDR", "USD"]
    assert [c.number for c in enabled] == [978, 826, 360, 840]


@pytest.mark.parametrize("codes", [[], (), iter(())], ids=["list", "tuple", "iterator"])
def test_an_empty_set_is_refused(codes: Iterable[str]) -> None:
    with pytest.raises(UnknownCurrency):
        CurrencyRegistry(codes)


def test_a_kovra_currencies_of_only_separators_is_refused() -> None:
    # Commas without codes are not "unset": the operator asked for something and got nothing.
    with pytest.raises(UnknownCurrency):
        CurrencyRegistry.from_environment({"KOVRA_CURRENCIES": ",,"})
