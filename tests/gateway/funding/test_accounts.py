"""Settlement accounts: the sandbox's defaults are valid in every currency they cover; a
configured account is checked with the rails' validators and every bad value is reported at
start naming the variable, the currency and the field; a currency not enabled is refused;
production without configuration has no accounts; and an account recognises itself in the
forms a statement names it."""

from __future__ import annotations

import json

import pytest

from gateway.funding.accounts import (
    accounts_in_force,
    parse_accounts,
    sandbox_accounts,
    sandbox_bank_details,
)
from gateway.settings import SettingsError, load_settings
from ledger.currencies import CurrencyRegistry

every_currency = CurrencyRegistry(sandbox_bank_details)


def test_the_sandbox_accounts_are_valid_in_every_currency_they_cover() -> None:
    accounts = sandbox_accounts(every_currency)
    assert {account.currency for account in accounts} == set(sandbox_bank_details)
    configured, problems = parse_accounts(json.dumps(sandbox_bank_details))
    assert problems == []
    assert configured == accounts


def test_every_bad_value_is_reported_with_its_currency_and_field() -> None:
    bad = {
        "EUR": {"iban": "DE89370400440532013001", "bic": "COBADEFFXXX"},
        "GBP": {"sort_code": "089999", "account_number": "66374959"},
        "USD": {"routing_number": "021000022", "account_number": "1234"},
        "NGN": {"bank_code": "058", "account_number": "0000000019"},
        "IDR": {"bank_code": "999", "account_number": "1234567890"},
        "SEK": {"iban": "SE4550000000058398257466", "bic": "ESSESESS", "swift": "x"},
        "DKK": {"account": "1"},
    }
    _, problems = parse_accounts(json.dumps(bad))
    fields = {
        "DKK": "bank_details",
        "EUR": "bank_details.iban",
        "GBP": "bank_details.account_number",
        "IDR": "bank_details.bank_code",
        "NGN": "bank_details.account_number",
        "SEK": "bank_details.swift",
        "USD": "bank_details.routing_number",
    }
    assert len(problems) == len(bad)
    for problem, (currency, field) in zip(problems, sorted(fields.items()), strict=True):
        assert problem.startswith(f"KOVRA_SETTLEMENT_ACCOUNTS: {currency}: {field}: "), problem
    assert parse_accounts("[1]")[1] == [
        "KOVRA_SETTLEMENT_ACCOUNTS must be a JSON object keyed by currency"
    ]


def settings_with(accounts: dict[str, object]) -> object:
    return load_settings({"KOVRA_SETTLEMENT_ACCOUNTS": json.dumps(accounts)})


def test_settings_refuse_bad_accounts_and_currencies_not_enabled() -> None:
    with pytest.raises(SettingsError, match="NUBAN"):
        settings_with({"NGN": {"bank_code": "058", "account_number": "0000000019"}})
    with pytest.raises(SettingsError, match="names a currency KOVRA_CURRENCIES does not enable"):
        settings_with({"NGN": sandbox_bank_details["NGN"]})
    named = {**sandbox_bank_details["EUR"], "holder_name": "Kovra Client Money"}
    settings = load_settings({"KOVRA_SETTLEMENT_ACCOUNTS": json.dumps({"EUR": named})})
    assert settings.settlement_accounts is not None
    assert settings.settlement_accounts[0].holder_name == "Kovra Client Money"


def test_production_without_configuration_has_no_accounts() -> None:
    currencies = CurrencyRegistry(["EUR", "GBP"])
    assert accounts_in_force(None, sandbox=False, currencies=currencies) == {}
    assert set(accounts_in_force(None, sandbox=True, currencies=currencies)) == {"EUR", "GBP"}


def test_an_account_recognises_the_forms_a_statement_names_it_by() -> None:
    accounts = {a.currency: a for a in sandbox_accounts(every_currency)}
    assert accounts["EUR"].identifies("DE89370400440532013000")
    assert not accounts["EUR"].identifies("DE89370400440532013001")
    assert accounts["GBP"].identifies("08999966374958")
    assert accounts["GBP"].identifies("GB29NWBK08999966374958")
    assert accounts["GBP"].identifies("66374958")
    assert not accounts["GBP"].identifies("66374959")
    assert accounts["USD"].identifies("000123456789")
