"""Configuration is validated at start: every bad variable is reported by name, at once."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from gateway.settings import (
    Choice,
    Integer,
    Settings,
    SettingsError,
    documented_elsewhere,
    load_settings,
    reference,
    variables,
)


def test_defaults_are_a_sandbox_on_embedded_services() -> None:
    settings = load_settings({})
    assert settings.sandbox
    assert settings.tb_addresses is None
    assert not settings.ledger_is_shared
    assert settings.currencies == ("DKK", "EUR", "GBP", "IDR", "SEK", "USD")
    assert str(settings.ledger_journal) == ".kovra/ledger.journal"


def test_every_bad_variable_is_named() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(
            {
                "KOVRA_ENV": "staging",
                "TB_CLUSTER_ID": "abc",
                "KOVRA_ADMIN_TOKEN": "short",
                "DATABASE_URL": "mysql://x",
                "KOVRA_CURRENCIES": "EUR,XXX",
                "KOVRA_REQUEST_BODY_BYTES_MAX": "10",
                "KOVRA_LEDGER_TIMEOUT_MS": "0",
                "KOVRA_WEBHOOK_RETRY_SCHEDULE": "5,soon",
                "KOVRA_WEBHOOK_TIMEOUT_SECONDS": "600",
            }
        )
    message = str(raised.value)
    for name in (
        "KOVRA_ENV",
        "TB_CLUSTER_ID",
        "KOVRA_ADMIN_TOKEN",
        "DATABASE_URL",
        "KOVRA_CURRENCIES",
        "KOVRA_REQUEST_BODY_BYTES_MAX",
        "KOVRA_LEDGER_TIMEOUT_MS",
        "KOVRA_WEBHOOK_RETRY_SCHEDULE",
        "KOVRA_WEBHOOK_TIMEOUT_SECONDS",
    ):
        assert name in message, name
    assert len(raised.value.problems) == 9


def test_the_quote_grace_outlasts_the_reconciler() -> None:
    """The reconciler gives a voided payout's count back from its quote's record, so the
    record's grace may be shortened (Redis' memory at high quote rates) but not below the
    reconciler's delay plus its margin."""
    assert load_settings({}).quote_record_grace_seconds == 86_400
    shortened = load_settings({"KOVRA_QUOTE_RECORD_GRACE_SECONDS": "3600"})
    assert shortened.quote_record_grace_seconds == 3_600
    with pytest.raises(SettingsError, match="KOVRA_QUOTE_RECORD_GRACE_SECONDS must be at"):
        load_settings(
            {"KOVRA_QUOTE_RECORD_GRACE_SECONDS": "3600", "KOVRA_RECONCILE_AFTER_SECONDS": "3500"}
        )
    with pytest.raises(SettingsError, match="KOVRA_QUOTE_RECORD_GRACE_SECONDS must be between"):
        load_settings({"KOVRA_QUOTE_RECORD_GRACE_SECONDS": "60"})


def test_production_needs_a_cluster_and_one_ledger_only() -> None:
    with pytest.raises(SettingsError, match="TB_ADDRESSES is required"):
        load_settings({"KOVRA_ENV": "production"})
    with pytest.raises(SettingsError, match="not both"):
        load_settings({"TB_ADDRESSES": "3000", "KOVRA_LEDGER_ADDRESS": "127.0.0.1:3300"})
    production = load_settings(
        {"KOVRA_ENV": "production", "TB_ADDRESSES": "3000", "KOVRA_SECRETS_KEY": "k" * 32}
    )
    assert production.ledger_is_shared
    assert not production.sandbox


def test_production_reconciles_only_after_any_write_has_ended() -> None:
    """A transfer's row is written within 15 s of its reservation; in production the
    reconciler may not claim the id sooner than 30 s (tests shorten it in the sandbox)."""
    production = {"KOVRA_ENV": "production", "TB_ADDRESSES": "3000", "KOVRA_SECRETS_KEY": "k" * 32}
    assert load_settings(production).reconcile_after_seconds == 30
    with pytest.raises(SettingsError, match="KOVRA_RECONCILE_AFTER_SECONDS must be at least 30"):
        load_settings({**production, "KOVRA_RECONCILE_AFTER_SECONDS": "5"})
    assert load_settings({"KOVRA_RECONCILE_AFTER_SECONDS": "1"}).reconcile_after_seconds == 1


def test_production_refuses_unscreened_payouts_without_an_emergency_reason() -> None:
    """`noop` approves every payout: production runs it only when someone has written down
    why, and the reason must say something."""
    production = {"KOVRA_ENV": "production", "TB_ADDRESSES": "3000", "KOVRA_SECRETS_KEY": "k" * 32}
    with pytest.raises(SettingsError, match="KOVRA_COMPLIANCE_NOOP_REASON"):
        load_settings({**production, "KOVRA_COMPLIANCE_MODE": "noop"})
    with pytest.raises(SettingsError, match="KOVRA_COMPLIANCE_NOOP_REASON must be"):
        load_settings(
            {**production, "KOVRA_COMPLIANCE_MODE": "noop", "KOVRA_COMPLIANCE_NOOP_REASON": " x "}
        )
    reason = "INC-4711: screening provider outage, approved by the MLRO"
    emergency = load_settings(
        {**production, "KOVRA_COMPLIANCE_MODE": "noop", "KOVRA_COMPLIANCE_NOOP_REASON": reason}
    )
    assert (emergency.compliance_mode, emergency.compliance_noop_reason) == ("noop", reason)
    # The sandbox may switch screening off to test an integration; it is still announced.
    assert load_settings({"KOVRA_COMPLIANCE_MODE": "noop"}).compliance_noop_reason is None


def test_production_gives_admissions_back_only_after_their_ledger_call_has_ended() -> None:
    """An admission whose payout is not in the ledger is given back once older than the
    reconciler's delay: in production a ledger call may not last that long."""
    production = {"KOVRA_ENV": "production", "TB_ADDRESSES": "3000", "KOVRA_SECRETS_KEY": "k" * 32}
    assert load_settings({**production, "KOVRA_LEDGER_TIMEOUT_MS": "29999"})
    with pytest.raises(SettingsError, match="KOVRA_LEDGER_TIMEOUT_MS must be shorter"):
        load_settings({**production, "KOVRA_LEDGER_TIMEOUT_MS": "30000"})
    assert load_settings({"KOVRA_LEDGER_TIMEOUT_MS": "60000"}).ledger_timeout_ms == 60_000


def test_the_webhook_retry_schedule_is_configurable() -> None:
    settings = load_settings({"KOVRA_WEBHOOK_RETRY_SCHEDULE": "1, 10,100"})
    assert settings.webhook_retry_schedule == (1.0, 10.0, 100.0)
    assert sum(load_settings({}).webhook_retry_schedule) > 18 * 3600


# The reference in docs/settings.md is generated from the module's tables; these tests fail
# when the file, the tables, `Settings` and the variables the code reads drift apart.

repository = Path(__file__).resolve().parents[2]
product_packages = ("gateway", "ledger", "fx", "rails", "compliance")
variable_literal = re.compile(
    r"""["']((?:KOVRA|TB)_[A-Z0-9_]+|DATABASE_URL|REDIS_URL|PROMETHEUS_MULTIPROC_DIR)["']"""
)


def test_the_settings_reference_is_generated_from_the_module() -> None:
    """Regenerate with `python -m gateway.settings --reference > docs/settings.md`."""
    written = (repository / "docs" / "settings.md").read_text()
    assert written == reference(), "docs/settings.md is stale: regenerate it"


def test_every_settings_field_is_filled_by_exactly_one_variable() -> None:
    filled = [variable.field for variable in variables]
    assert sorted(filled) == sorted(field.name for field in msgspec.structs.fields(Settings))
    names = [variable.name for variable in variables]
    assert len(set(names)) == len(names)


def test_every_variable_the_code_reads_is_in_the_reference() -> None:
    read: set[str] = set()
    for package in product_packages:
        for path in (repository / package).rglob("*.py"):
            if path != repository / "gateway" / "settings.py":
                read.update(variable_literal.findall(path.read_text()))
    documented = {variable.name for variable in variables}
    elsewhere = {variable.name for variable in documented_elsewhere}
    assert read - documented - elsewhere == set(), "add these to gateway/settings.py"
    assert elsewhere - read == set(), "the reference names a variable nothing else reads"


def test_each_default_in_the_reference_is_the_default_loaded() -> None:
    loaded = load_settings({})
    for variable in variables:
        default = getattr(loaded, variable.field)
        if isinstance(variable.kind, Integer | Choice):
            assert variable.kind.default_text() == f"`{default}`", variable.name
        elif variable.kind.default_text() in ("unset", "none"):
            assert default in (None, ()), variable.name
