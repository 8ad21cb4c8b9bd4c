"""Kovra's configuration: environment variables, validated once at start.

Every bad value is reported, each naming its variable, before anything starts: a typo in
production must stop the process, not surface later as a strange failure.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

from fx.quotes import (
    quote_ttl_seconds_default,
    quote_ttl_seconds_max,
    record_grace_seconds_default,
    record_grace_seconds_max,
    record_grace_seconds_min,
)
from fx.rates import max_age_seconds_default
from fx.sources import parse_table
from gateway.jobs.retention import (
    Retention,
    event_retention_days_default,
    event_retention_days_max,
    idempotency_retention_days_default,
    idempotency_retention_days_max,
)
from gateway.webhooks.schedule import parse_schedule, retry_schedule_default
from ledger.clients import timeout_ms_default, timeout_ms_max
from ledger.currencies import CurrencyRegistry
from ledger.errors import LedgerError

environments = ("sandbox", "production")
admin_token_length_min = 32
jwt_secret_length_min = 32
secrets_key_length_min = 32
request_body_bytes_default = 64 * 1024
request_body_bytes_max = 16 * 1024 * 1024
database_pool_size_default = 10
database_pool_size_max = 100
log_levels = ("debug", "info", "warning", "error")
webhook_timeout_seconds_default = 10
webhook_timeout_seconds_max = 60


# How long past the reconciler's delay what it reads to settle a payout must stay in Redis
# (the transfer's quote, the quote's record): room for a reconciler that is behind.
reconcile_margin_seconds = 600


class SettingsError(ValueError):
    """One or more environment variables are invalid; the message names each one."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))
        self.problems = problems


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    environment: str
    database_url: str | None
    redis_url: str | None
    tb_addresses: str | None
    tb_cluster_id: int
    ledger_address: str | None
    ledger_timeout_ms: int
    data_dir: Path
    admin_token: str | None
    jwt_secret: str | None
    currencies: tuple[str, ...]
    request_body_bytes_max: int
    database_pool_size: int
    log_level: str
    in_process_worker: bool
    fx_source: str
    fx_feed_url: str | None
    fx_feed_refresh_seconds: int
    fx_max_age_seconds: int
    fx_rates: str | None
    quote_ttl_seconds: int
    quote_record_grace_seconds: int
    pending_rail_base_ms: int
    reconcile_after_seconds: int
    sandbox_latency_ms_max: int
    compliance_mode: str
    compliance_cache_seconds: int
    sanctions_files: tuple[str, ...]
    screening_block_score: int
    screening_review_score: int
    sanctions_refresh_seconds: int
    webhook_retry_schedule: tuple[float, ...]
    webhook_timeout_seconds: int
    event_retention_days: int
    idempotency_retention_days: int
    secrets_key: str | None
    secrets_keys_previous: tuple[str, ...]

    @property
    def retention(self) -> Retention:
        return Retention(
            event_days=self.event_retention_days, idempotency_days=self.idempotency_retention_days
        )

    @property
    def sandbox(self) -> bool:
        return self.environment == "sandbox"

    @property
    def ledger_journal(self) -> Path:
        return self.data_dir / "ledger.journal"

    @property
    def ledger_is_shared(self) -> bool:
        """Whether several processes can use the ledger (a cluster or the ledger server)."""
        return bool(self.tb_addresses or self.ledger_address)


class _Reader:
    """Reads variables and collects every problem instead of stopping at the first."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[str] = []

    def text(self, name: str) -> str | None:
        value = self.environ.get(name, "").strip()
        return value or None

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            self.problems.append(f"{name} must be an integer, got {raw!r}")
            return default
        if not low <= value <= high:
            self.problems.append(f"{name} must be between {low} and {high}, got {value}")
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = (self.text(name) or default).lower()
        if value not in choices:
            self.problems.append(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return value

    def secret(self, name: str, length_min: int) -> str | None:
        value = self.text(name)
        if value is not None and len(value) < length_min:
            self.problems.append(f"{name} must be at least {length_min} characters long")
        return value

    def secrets(self, name: str, length_min: int) -> tuple[str, ...]:
        """A comma-separated list of secrets, each at least `length_min` characters."""
        values = tuple(part.strip() for part in (self.text(name) or "").split(",") if part.strip())
        if any(len(value) < length_min for value in values):
            self.problems.append(f"{name}: each key must be at least {length_min} characters long")
        return values

    def schedule(self, name: str, default: tuple[float, ...]) -> tuple[float, ...]:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            return parse_schedule(raw)
        except ValueError as error:
            self.problems.append(f"{name} {error}")
            return default

    def url(self, name: str, schemes: tuple[str, ...]) -> str | None:
        value = self.text(name)
        if value is not None and not value.startswith(schemes):
            self.problems.append(f"{name} must start with {' or '.join(schemes)}")
        return value


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the environment; `SettingsError` lists every invalid variable."""
    reader = _Reader(os.environ if environ is None else environ)
    environment = reader.choice("KOVRA_ENV", "sandbox", environments)
    currencies: tuple[str, ...] = ()
    try:
        currencies = tuple(
            c.code for c in CurrencyRegistry.from_environment(reader.environ).enabled()
        )
    except LedgerError as error:
        reader.problems.append(f"KOVRA_CURRENCIES: {error.detail}")
    settings = Settings(
        environment=environment,
        database_url=reader.url("DATABASE_URL", ("postgres://", "postgresql://")),
        redis_url=reader.url("REDIS_URL", ("redis://", "rediss://", "unix://")),
        tb_addresses=reader.text("TB_ADDRESSES"),
        tb_cluster_id=reader.integer("TB_CLUSTER_ID", 0, 0, (1 << 128) - 1),
        ledger_address=reader.text("KOVRA_LEDGER_ADDRESS"),
        ledger_timeout_ms=reader.integer(
            "KOVRA_LEDGER_TIMEOUT_MS", timeout_ms_default, 1, timeout_ms_max
        ),
        data_dir=Path(reader.text("KOVRA_DATA_DIR") or ".kovra"),
        admin_token=reader.secret("KOVRA_ADMIN_TOKEN", admin_token_length_min),
        jwt_secret=reader.secret("KOVRA_JWT_SECRET", jwt_secret_length_min),
        currencies=currencies,
        request_body_bytes_max=reader.integer(
            "KOVRA_REQUEST_BODY_BYTES_MAX",
            request_body_bytes_default,
            1024,
            request_body_bytes_max,
        ),
        database_pool_size=reader.integer(
            "KOVRA_DATABASE_POOL_SIZE", database_pool_size_default, 1, database_pool_size_max
        ),
        log_level=reader.choice("KOVRA_LOG_LEVEL", "info", log_levels),
        in_process_worker=reader.choice("KOVRA_IN_PROCESS_WORKER", "0", ("0", "1")) == "1",
        fx_source=reader.choice("KOVRA_FX_SOURCE", "table", ("table", "http")),
        fx_feed_url=reader.url("KOVRA_FX_FEED_URL", ("http://", "https://")),
        fx_feed_refresh_seconds=reader.integer("KOVRA_FX_FEED_REFRESH_SECONDS", 60, 1, 86_400),
        fx_max_age_seconds=reader.integer(
            "KOVRA_FX_MAX_AGE_SECONDS", max_age_seconds_default, 1, 7 * 86_400
        ),
        fx_rates=reader.text("KOVRA_FX_RATES"),
        quote_ttl_seconds=reader.integer(
            "KOVRA_QUOTE_TTL_SECONDS", quote_ttl_seconds_default, 10, quote_ttl_seconds_max
        ),
        quote_record_grace_seconds=reader.integer(
            "KOVRA_QUOTE_RECORD_GRACE_SECONDS",
            record_grace_seconds_default,
            record_grace_seconds_min,
            record_grace_seconds_max,
        ),
        pending_rail_base_ms=reader.integer("KOVRA_PENDING_RAIL_BASE_MS", 1_000, 1, 600_000),
        reconcile_after_seconds=reader.integer("KOVRA_RECONCILE_AFTER_SECONDS", 30, 1, 86_400),
        sandbox_latency_ms_max=reader.integer("KOVRA_SANDBOX_LATENCY_MS_MAX", 120, 0, 10_000),
        compliance_mode=reader.choice("KOVRA_COMPLIANCE_MODE", "rules", ("rules", "noop")),
        compliance_cache_seconds=reader.integer("KOVRA_COMPLIANCE_CACHE_SECONDS", 0, 0, 3_600),
        sanctions_files=tuple(
            part.strip()
            for part in (reader.text("KOVRA_SANCTIONS_FILES") or "").split(",")
            if part.strip()
        ),
        screening_block_score=reader.integer("KOVRA_SCREENING_BLOCK_SCORE", 92, 1, 100),
        screening_review_score=reader.integer("KOVRA_SCREENING_REVIEW_SCORE", 85, 1, 100),
        sanctions_refresh_seconds=reader.integer("KOVRA_SANCTIONS_REFRESH_SECONDS", 60, 1, 86_400),
        webhook_retry_schedule=reader.schedule(
            "KOVRA_WEBHOOK_RETRY_SCHEDULE", retry_schedule_default
        ),
        webhook_timeout_seconds=reader.integer(
            "KOVRA_WEBHOOK_TIMEOUT_SECONDS",
            webhook_timeout_seconds_default,
            1,
            webhook_timeout_seconds_max,
        ),
        event_retention_days=reader.integer(
            "KOVRA_EVENT_RETENTION_DAYS",
            event_retention_days_default,
            1,
            event_retention_days_max,
        ),
        idempotency_retention_days=reader.integer(
            "KOVRA_IDEMPOTENCY_RETENTION_DAYS",
            idempotency_retention_days_default,
            1,
            idempotency_retention_days_max,
        ),
        secrets_key=reader.secret("KOVRA_SECRETS_KEY", secrets_key_length_min),
        secrets_keys_previous=reader.secrets("KOVRA_SECRETS_KEYS_PREVIOUS", secrets_key_length_min),
    )
    if settings.screening_review_score > settings.screening_block_score:
        reader.problems.append(
            "KOVRA_SCREENING_REVIEW_SCORE must not exceed KOVRA_SCREENING_BLOCK_SCORE"
        )
    for path in settings.sanctions_files:
        if not Path(path).exists():
            reader.problems.append(f"KOVRA_SANCTIONS_FILES: {path} does not exist")
    # The reconciler gives a voided payout's count back from its quote's record, up to its
    # delay plus the margin after the payout: the record must still be there.
    if (
        settings.quote_record_grace_seconds
        < settings.reconcile_after_seconds + reconcile_margin_seconds
    ):
        reader.problems.append(
            "KOVRA_QUOTE_RECORD_GRACE_SECONDS must be at least KOVRA_RECONCILE_AFTER_SECONDS"
            f" + {reconcile_margin_seconds}"
        )
    if settings.fx_source == "http" and not settings.fx_feed_url:
        reader.problems.append("KOVRA_FX_FEED_URL is required when KOVRA_FX_SOURCE=http")
    if settings.fx_rates is not None:
        try:
            parse_table(settings.fx_rates)
        except ValueError as error:
            reader.problems.append(str(error))
    if settings.tb_addresses and settings.ledger_address:
        reader.problems.append("set TB_ADDRESSES or KOVRA_LEDGER_ADDRESS, not both")
    # A transfer's row is written within 15 s of its reservation (a 5 s wait for a pooled
    # connection, a 10 s statement); the reconciler must not claim its id before that.
    if environment == "production" and settings.reconcile_after_seconds < 30:
        reader.problems.append(
            "KOVRA_RECONCILE_AFTER_SECONDS must be at least 30 when KOVRA_ENV=production"
        )
    # A transfer's admission reaches the ledger within one ledger call; the reconciler gives
    # back admissions with no payout in the ledger once they are older than its delay.
    if environment == "production" and settings.ledger_timeout_ms >= (
        settings.reconcile_after_seconds * 1000
    ):
        reader.problems.append(
            "KOVRA_LEDGER_TIMEOUT_MS must be shorter than KOVRA_RECONCILE_AFTER_SECONDS"
            " when KOVRA_ENV=production"
        )
    if environment == "production" and not settings.tb_addresses:
        reader.problems.append("TB_ADDRESSES is required when KOVRA_ENV=production")
    if environment == "production" and not settings.secrets_key:
        reader.problems.append(
            "KOVRA_SECRETS_KEY is required when KOVRA_ENV=production (it seals webhook secrets)"
        )
    if reader.problems:
        raise SettingsError(reader.problems)
    return settings
