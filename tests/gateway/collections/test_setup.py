"""The collections domain's configuration: provider secrets are checked at start with an
error naming the variable; in the sandbox without a configured secret every process derives
the same one from the secrets key material (a valid `whsec_` secret that reveals nothing of
the material); production has no provider transport, so no provider is built and their
notifications have no secret. SEPA collections are made as the configured creditor
identifier (checked at start), into the EUR settlement account."""

from __future__ import annotations

import pytest

from gateway.collections.setup import derived_sandbox_secret, notification_secrets, sepa_creditor
from gateway.settings import SettingsError, load_settings
from ledger.currencies import CurrencyRegistry
from rails.collections.notifications import webhook_for
from rails.collections.sepa_dd import sandbox_creditor

material = "k" * 40
good = "whsec_" + "c2FuZGJveC1wcm92aWRlci1zZWNyZXQtZm9yLXRlc3Rz"


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"KOVRA_SANDBOX_PROVIDER_SECRET": "not-a-secret"}, "KOVRA_SANDBOX_PROVIDER_SECRET"),
        ({"KOVRA_PROVIDER_WEBHOOK_SECRETS": f"stripe={good}"}, "KOVRA_PROVIDER_WEBHOOK_SECRETS"),
        ({"KOVRA_PROVIDER_WEBHOOK_SECRETS": "sepa_dd=whsec_short"}, "(sepa_dd)"),
        ({"KOVRA_PROVIDER_WEBHOOK_SECRETS": good}, "KOVRA_PROVIDER_WEBHOOK_SECRETS"),
        # The AT-02 check digits of DE98ZZZ09999999999, altered.
        ({"KOVRA_SEPA_CREDITOR_ID": "DE97ZZZ09999999999"}, "KOVRA_SEPA_CREDITOR_ID"),
    ],
)
def test_a_bad_provider_secret_stops_the_start_naming_it(
    variables: dict[str, str], named: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(variables)
    assert any(named in problem for problem in refused.value.problems), refused.value.problems


def test_the_sandbox_secret_is_derived_the_same_everywhere_and_is_a_valid_one() -> None:
    derived = derived_sandbox_secret(material)
    assert derived == derived_sandbox_secret(material)
    assert derived != derived_sandbox_secret(material + "x")
    assert material not in derived
    webhook_for(derived)  # A malformed secret raises.
    settings = load_settings({})
    secrets = notification_secrets(settings, key_material=material, providers=["sepa_dd"])
    assert secrets == {"sepa_dd": [derived]}
    configured = load_settings({"KOVRA_SANDBOX_PROVIDER_SECRET": good})
    secrets = notification_secrets(configured, key_material=material, providers=["bacs_dd"])
    assert secrets == {"bacs_dd": [good]}


def test_production_reads_each_providers_secrets_and_rotations() -> None:
    other = good.replace("c2F", "b3R")
    settings = load_settings(
        {
            "KOVRA_ENV": "production",
            "TB_ADDRESSES": "127.0.0.1:3000",
            "KOVRA_SECRETS_KEY": material,
            "KOVRA_PROVIDER_WEBHOOK_SECRETS": f"sepa_dd={good}, sepa_dd={other},bacs_dd={good}",
        }
    )
    secrets = notification_secrets(settings, key_material=material, providers=[])
    assert secrets == {"sepa_dd": [good, other], "bacs_dd": [good]}


def test_sepa_collections_are_made_as_the_configured_creditor_into_the_euro_account() -> None:
    settlement = (
        '{"EUR": {"iban": "FR1420041010050500013M02606", "bic": "PSSTFRPPLIL",'
        ' "holder_name": "Kovra Payments SAS"}}'
    )
    settings = load_settings(
        {"KOVRA_SEPA_CREDITOR_ID": "FR72ZZZ123456", "KOVRA_SETTLEMENT_ACCOUNTS": settlement}
    )
    creditor = sepa_creditor(settings, CurrencyRegistry(settings.currencies))
    assert (creditor.identifier, creditor.iban, creditor.bic, creditor.name) == (
        "FR72ZZZ123456",
        "FR1420041010050500013M02606",
        "PSSTFRPPLIL",
        "Kovra Payments SAS",
    )
    # Unconfigured, the sandbox collects as the published test creditor.
    default = load_settings({})
    assert sepa_creditor(default, CurrencyRegistry(default.currencies)).identifier == (
        sandbox_creditor.identifier
    )
