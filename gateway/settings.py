"""Kovra's configuration: environment variables, validated once at start.

Every bad value is reported, each naming its variable, before anything starts: a typo in
production must stop the process, not surface later as a strange failure.

Each variable is described once, as data in `variables`: its name, the `Settings` field it
fills, how it is read (its default and its range or choices) and what it means. The rules
between variables are data too (`rules`). `load_settings` is driven by those tables, and so
is the reference in docs/settings.md, which is generated from them:

    python -m gateway.settings --reference > docs/settings.md

and tests/gateway/test_settings.py fails when the file and this module differ.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

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
from gateway.buckets.wire import (
    buckets_per_customer_default,
    buckets_per_customer_limit_max,
    rules_per_customer_default,
    rules_per_customer_limit_max,
)
from gateway.funding.accounts import (
    SettlementAccount,
    currencies_not_enabled,
    parse_accounts,
)
from gateway.funding.accounts import variable_name as settlement_accounts_variable
from gateway.jobs.retention import (
    Retention,
    event_retention_days_default,
    event_retention_days_max,
    idempotency_retention_days_default,
    idempotency_retention_days_max,
)
from gateway.transfers.records import claim_lease_seconds_default, claim_lease_seconds_max
from gateway.webhooks.schedule import (
    parse_schedule,
    retries_max,
    retry_delay_seconds_max,
    retry_schedule_default,
)
from ledger.clients import timeout_ms_default, timeout_ms_max
from ledger.currencies import (
    CurrencyRegistry,
    currencies_enabled_default,
    currencies_environment_variable,
)
from ledger.errors import LedgerError
from rails.adapter import pending_rail_cap_ms
from rails.collections.notifications import secret_key_bytes_min, webhook_for
from rails.collections.sepa_dd import check_creditor_identifier
from rails.memory import duplicate_window_seconds_default, duplicate_window_seconds_max

environments = ("sandbox", "production")
admin_token_length_min = 32
jwt_secret_length_min = 32
secrets_key_length_min = 32
request_body_bytes_default = 64 * 1024
request_body_bytes_max = 16 * 1024 * 1024
# The idempotency store's own default and bound (`gateway.http.idempotency`: `lease_ms_default`,
# `duration_ms_max`), not imported from there: the HTTP modules load the metrics, which
# `kovra serve` must set up before anything loads them.
idempotency_lease_seconds_default = 60
idempotency_lease_seconds_max = 3_600
database_pool_size_default = 10
database_pool_size_max = 100
log_levels = ("debug", "info", "warning", "error")
webhook_timeout_seconds_default = 10
webhook_timeout_seconds_max = 60
# TigerBeetle's cluster id is a u128.
cluster_id_max = (1 << 128) - 1
# In production a transfer's row is written within 15 s of its reservation (a 5 s wait for
# a pooled connection, a 10 s statement); the reconciler may not claim its id before that.
reconcile_after_seconds_production_min = 30
compliance_noop_reason_length_min = 8
compliance_noop_reason_length_max = 500
mandate_provider_names = ("paywithaccount", "sepa_dd", "bacs_dd")
mandate_pending_expiry_seconds_default = 7 * 86_400
collection_lookup_after_seconds_default = 600
partner_attempts_max_default = 5
partner_timeout_ms_default = 10_000
partner_timeout_ms_max = 60_000
partner_send_tries_default = 3
partner_send_tries_max = 10


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
    idempotency_lease_seconds: int
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
    transfer_lease_seconds: int
    reconcile_after_seconds: int
    sandbox_latency_ms_max: int
    sandbox_duplicate_window_seconds: int
    compliance_mode: str
    compliance_noop_reason: str | None
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
    # None: not configured (the sandbox's own accounts, none in production).
    settlement_accounts: tuple[SettlementAccount, ...] | None
    sandbox_provider_secret: str | None
    provider_webhook_secrets: tuple[tuple[str, str], ...]
    sandbox_provider_notify_url: str | None
    mandate_pending_expiry_seconds: int
    collection_lookup_after_seconds: int
    sepa_creditor_identifier: str | None
    partner_attempts_max: int
    partner_timeout_ms: int
    partner_send_tries_max: int
    buckets_per_customer_max: int
    rules_per_customer_max: int

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

    def parts(self, name: str) -> tuple[str, ...]:
        """A comma-separated value, blank parts dropped."""
        return tuple(part.strip() for part in (self.text(name) or "").split(",") if part.strip())


# How a variable is read: each kind parses and checks one value, and describes its default
# and its allowed values for the reference.


class Kind(Protocol):
    def read(self, reader: _Reader, name: str) -> Any: ...

    def default_text(self) -> str: ...

    def allowed_text(self) -> str: ...


def _code(value: object) -> str:
    return f"`{value}`"


class Integer(msgspec.Struct, frozen=True, kw_only=True):
    default: int
    low: int
    high: int
    # How to write `high` in the reference when digits would not say it well.
    high_text: str | None = None

    def read(self, reader: _Reader, name: str) -> int:
        raw = reader.text(name)
        if raw is None:
            return self.default
        try:
            value = int(raw)
        except ValueError:
            reader.problems.append(f"{name} must be an integer, got {raw!r}")
            return self.default
        if not self.low <= value <= self.high:
            reader.problems.append(
                f"{name} must be between {self.low} and {self.high}, got {value}"
            )
        return value

    def default_text(self) -> str:
        return _code(self.default)

    def allowed_text(self) -> str:
        return f"{self.low} to {self.high_text or self.high}"


class Choice(msgspec.Struct, frozen=True, kw_only=True):
    default: str
    choices: tuple[str, ...]

    def read(self, reader: _Reader, name: str) -> str:
        value = (reader.text(name) or self.default).lower()
        if value not in self.choices:
            reader.problems.append(
                f"{name} must be one of {', '.join(self.choices)}, got {value!r}"
            )
        return value

    def default_text(self) -> str:
        return _code(self.default)

    def allowed_text(self) -> str:
        return ", ".join(_code(choice) for choice in self.choices)


class Switch(msgspec.Struct, frozen=True, kw_only=True):
    """`1` turns something on, `0` (the default) leaves it off."""

    def read(self, reader: _Reader, name: str) -> bool:
        return Choice(default="0", choices=("0", "1")).read(reader, name) == "1"

    def default_text(self) -> str:
        return _code(0)

    def allowed_text(self) -> str:
        return "`0`, `1`"


class Text(msgspec.Struct, frozen=True, kw_only=True):
    """Free text, unset by default; `check` raises ValueError naming what is wrong."""

    shape: str
    check: Callable[[str], object] | None = None

    def read(self, reader: _Reader, name: str) -> str | None:
        value = reader.text(name)
        if value is not None and self.check is not None:
            try:
                self.check(value)
            except ValueError as error:
                reader.problems.append(str(error))
        return value

    def default_text(self) -> str:
        return "unset"

    def allowed_text(self) -> str:
        return self.shape


class Directory(msgspec.Struct, frozen=True, kw_only=True):
    default: str

    def read(self, reader: _Reader, name: str) -> Path:
        return Path(reader.text(name) or self.default)

    def default_text(self) -> str:
        return _code(self.default)

    def allowed_text(self) -> str:
        return "a directory path"


class Url(msgspec.Struct, frozen=True, kw_only=True):
    schemes: tuple[str, ...]

    def read(self, reader: _Reader, name: str) -> str | None:
        value = reader.text(name)
        if value is not None and not value.startswith(self.schemes):
            reader.problems.append(f"{name} must start with {' or '.join(self.schemes)}")
        return value

    def default_text(self) -> str:
        return "unset"

    def allowed_text(self) -> str:
        return "a URL starting with " + " or ".join(_code(scheme) for scheme in self.schemes)


class Secret(msgspec.Struct, frozen=True, kw_only=True):
    length_min: int

    def read(self, reader: _Reader, name: str) -> str | None:
        value = reader.text(name)
        if value is not None and len(value) < self.length_min:
            reader.problems.append(f"{name} must be at least {self.length_min} characters long")
        return value

    def default_text(self) -> str:
        return "unset"

    def allowed_text(self) -> str:
        return f"at least {self.length_min} characters"


class SecretList(msgspec.Struct, frozen=True, kw_only=True):
    """A comma-separated list of secrets, each at least `length_min` characters."""

    length_min: int

    def read(self, reader: _Reader, name: str) -> tuple[str, ...]:
        values = reader.parts(name)
        if any(len(value) < self.length_min for value in values):
            reader.problems.append(
                f"{name}: each key must be at least {self.length_min} characters long"
            )
        return values

    def default_text(self) -> str:
        return "none"

    def allowed_text(self) -> str:
        return f"comma-separated, each at least {self.length_min} characters"


class FileList(msgspec.Struct, frozen=True, kw_only=True):
    """Comma-separated paths of files that must exist."""

    def read(self, reader: _Reader, name: str) -> tuple[str, ...]:
        paths = reader.parts(name)
        for path in paths:
            if not Path(path).exists():
                reader.problems.append(f"{name}: {path} does not exist")
        return paths

    def default_text(self) -> str:
        return "none"

    def allowed_text(self) -> str:
        return "comma-separated paths of existing files"


class Schedule(msgspec.Struct, frozen=True, kw_only=True):
    default: tuple[float, ...]

    def read(self, reader: _Reader, name: str) -> tuple[float, ...]:
        raw = reader.text(name)
        if raw is None:
            return self.default
        try:
            return parse_schedule(raw)
        except ValueError as error:
            reader.problems.append(f"{name} {error}")
            return self.default

    def default_text(self) -> str:
        return _code(",".join(f"{delay:g}" for delay in self.default))

    def allowed_text(self) -> str:
        return (
            f"comma-separated seconds, each 0 to {retry_delay_seconds_max:.0f},"
            f" at most {retries_max} of them"
        )


class Currencies(msgspec.Struct, frozen=True, kw_only=True):
    """The enabled currencies, read by `ledger.currencies` (the ledger checks them too)."""

    def read(self, reader: _Reader, name: str) -> tuple[str, ...]:
        try:
            registry = CurrencyRegistry.from_environment({name: reader.text(name) or ""})
        except LedgerError as error:
            reader.problems.append(f"{name}: {error.detail}")
            return ()
        return tuple(currency.code for currency in registry.enabled())

    def default_text(self) -> str:
        return _code(",".join(sorted(currencies_enabled_default)))

    def allowed_text(self) -> str:
        return "comma-separated ISO 4217 codes of currencies with minor units"


class SettlementAccounts(msgspec.Struct, frozen=True, kw_only=True):
    """The settlement bank accounts, JSON keyed by currency (`gateway.funding.accounts`),
    each checked with the rails' bank-detail validators."""

    def read(self, reader: _Reader, name: str) -> tuple[SettlementAccount, ...] | None:
        raw = reader.text(name)
        if raw is None:
            return None
        accounts, problems = parse_accounts(raw)
        reader.problems.extend(problems)
        return accounts

    def default_text(self) -> str:
        return "the sandbox's accounts; none in production"

    def allowed_text(self) -> str:
        return (
            'JSON keyed by currency: `{"EUR": {"iban": ..., "bic": ...}}`; GBP `sort_code`'
            " and `account_number`; IDR, NGN `bank_code` and `account_number`; USD"
            " `routing_number` and `account_number`; each may add `holder_name`"
        )


def _sepa_creditor_identifier(value: str) -> None:
    try:
        check_creditor_identifier(value)
    except ValueError as error:
        raise ValueError(f"KOVRA_SEPA_CREDITOR_ID: {error}") from None


def _webhook_secret(name: str, value: str) -> str | None:
    """What is wrong with a provider's `whsec_` secret, or None: the very check the signer
    and the verifier make (`rails.collections.notifications.webhook_for`)."""
    try:
        webhook_for(value)
    except ValueError as error:
        return f"{name}: {error}"
    return None


class ProviderSecret(msgspec.Struct, frozen=True, kw_only=True):
    """One `whsec_` secret, unset by default."""

    def read(self, reader: _Reader, name: str) -> str | None:
        value = reader.text(name)
        if value is not None and (problem := _webhook_secret(name, value)) is not None:
            reader.problems.append(problem)
        return value

    def default_text(self) -> str:
        return "unset"

    def allowed_text(self) -> str:
        return f"`whsec_` and base64 of at least {secret_key_bytes_min} bytes"


class ProviderSecrets(msgspec.Struct, frozen=True, kw_only=True):
    """`provider=whsec_...` pairs, comma-separated; a provider may appear twice while its
    secret is rotated."""

    def read(self, reader: _Reader, name: str) -> tuple[tuple[str, str], ...]:
        pairs: list[tuple[str, str]] = []
        for part in reader.parts(name):
            provider, separator, secret = part.partition("=")
            provider, secret = provider.strip(), secret.strip()
            if not separator or provider not in mandate_provider_names:
                reader.problems.append(
                    f"{name}: {provider[:32]!r} is not one of {', '.join(mandate_provider_names)}"
                    " (write provider=whsec_...)"
                )
                continue
            if (problem := _webhook_secret(f"{name} ({provider})", secret)) is not None:
                reader.problems.append(problem)
                continue
            pairs.append((provider, secret))
        return tuple(pairs)

    def default_text(self) -> str:
        return "none"

    def allowed_text(self) -> str:
        return "comma-separated `provider=whsec_...`"


class Variable(msgspec.Struct, frozen=True, kw_only=True):
    """One environment variable: the `Settings` field it fills, how, and what it means."""

    name: str
    field: str
    kind: Kind
    meaning: str
    section: str


class Rule(msgspec.Struct, frozen=True, kw_only=True):
    """A rule between variables: `problem` is reported when `broken` says so."""

    problem: str
    broken: Callable[[Settings], bool]
    why: str


class Documented(msgspec.Struct, frozen=True, kw_only=True):
    """A variable read outside `Settings`, listed so the reference names every variable."""

    name: str
    default: str
    allowed: str
    meaning: str
    read_by: str


def _noop_reason(value: str) -> None:
    # The reason is copied into every start's log line and audit record: it must say
    # something, and not flood either.
    if (
        not compliance_noop_reason_length_min
        <= len(value.strip())
        <= compliance_noop_reason_length_max
    ):
        raise ValueError(
            f"KOVRA_COMPLIANCE_NOOP_REASON must be {compliance_noop_reason_length_min} to"
            f" {compliance_noop_reason_length_max} characters (an incident id and who decided)"
        )


_services = "Environment and services"
_ledger = "Ledger"
_access = "Access and requests"
_fx = "FX rates and quotes"
_transfers = "Transfers and rails"
_compliance = "Compliance"
_webhooks = "Webhooks"
_retention = "Retention"
_secrets = "Sealed secrets"
_funding = "Funding"
_collections = "Collections (money in)"
_partners = "Partners"
_automation = "Automation (buckets, rules, partners, runs)"

variables: tuple[Variable, ...] = (
    Variable(
        name="KOVRA_ENV",
        field="environment",
        kind=Choice(default="sandbox", choices=environments),
        section=_services,
        meaning="`sandbox` enables the simulated rails, `POST /v1/deposits`, default FX rates"
        " and local webhook receivers; `production` requires `TB_ADDRESSES` and"
        " `KOVRA_SECRETS_KEY`, and `kovra worker` refuses it until real rails exist. Both run"
        " the same ledger, compliance and audit code.",
    ),
    Variable(
        name="DATABASE_URL",
        field="database_url",
        kind=Url(schemes=("postgres://", "postgresql://")),
        section=_services,
        meaning="Postgres: metadata, the outbox, the audit trail. Unset, processes use"
        " `postgresql://postgres@127.0.0.1:5432/kovra`; `kovra dev` tries that, then starts"
        " an embedded Postgres under `KOVRA_DATA_DIR`.",
    ),
    Variable(
        name="REDIS_URL",
        field="redis_url",
        kind=Url(schemes=("redis://", "rediss://", "unix://")),
        section=_services,
        meaning="Redis: API keys and rate limits, idempotency, quotes, daily limits. Unset,"
        " processes use `redis://127.0.0.1:6379/0`; `kovra dev` tries that, then starts an"
        " embedded Redis under `KOVRA_DATA_DIR`.",
    ),
    Variable(
        name="KOVRA_DATABASE_POOL_SIZE",
        field="database_pool_size",
        kind=Integer(default=database_pool_size_default, low=1, high=database_pool_size_max),
        section=_services,
        meaning="Postgres connections per process (each gateway worker, each `kovra worker`).",
    ),
    Variable(
        name="KOVRA_DATA_DIR",
        field="data_dir",
        kind=Directory(default=".kovra"),
        section=_services,
        meaning="Local state: the embedded ledger's journal (`ledger.journal`), the sandbox's"
        " sealing key, and the embedded Postgres and Redis of `kovra dev`.",
    ),
    Variable(
        name="KOVRA_LOG_LEVEL",
        field="log_level",
        kind=Choice(default="info", choices=log_levels),
        section=_services,
        meaning="The least severe level written; logs are JSON lines on stdout.",
    ),
    Variable(
        name="KOVRA_IN_PROCESS_WORKER",
        field="in_process_worker",
        kind=Switch(),
        section=_services,
        meaning="Runs the worker's loops inside the gateway process. `kovra dev` sets it, since"
        " its embedded ledger lives in that one process; production runs `kovra worker`.",
    ),
    Variable(
        name="TB_ADDRESSES",
        field="tb_addresses",
        kind=Text(shape="comma-separated replica addresses (`3000`, `10.0.0.1:3000,...`)"),
        section=_ledger,
        meaning="The TigerBeetle cluster's replicas. Unset, Kovra uses its embedded engine,"
        " which lives in one process unless `KOVRA_LEDGER_ADDRESS` shares it.",
    ),
    Variable(
        name="TB_CLUSTER_ID",
        field="tb_cluster_id",
        kind=Integer(default=0, low=0, high=cluster_id_max, high_text="2^128 - 1"),
        section=_ledger,
        meaning="The TigerBeetle cluster id the replicas were formatted with.",
    ),
    Variable(
        name="KOVRA_LEDGER_ADDRESS",
        field="ledger_address",
        kind=Text(shape="`HOST:PORT` or `unix:PATH`"),
        section=_ledger,
        meaning="A `kovra ledger-server` sharing one embedded engine with several processes"
        " (e.g. `kovra serve --workers 2` without a cluster).",
    ),
    Variable(
        name="KOVRA_LEDGER_TIMEOUT_MS",
        field="ledger_timeout_ms",
        kind=Integer(default=timeout_ms_default, low=1, high=timeout_ms_max),
        section=_ledger,
        meaning="How long one ledger call may wait for its answer; past it the call fails"
        " with `ledger_unavailable` (503), and retrying it with the same ids is safe.",
    ),
    Variable(
        name=currencies_environment_variable,
        field="currencies",
        kind=Currencies(),
        section=_ledger,
        meaning="The currencies this deployment holds and pays out; each is a TigerBeetle"
        " ledger (its ISO 4217 numeric code), amounts in its minor units.",
    ),
    Variable(
        name="KOVRA_ADMIN_TOKEN",
        field="admin_token",
        kind=Secret(length_min=admin_token_length_min),
        section=_access,
        meaning="The bearer token of the admin plane (`/admin/v1`). Unset, the admin plane"
        " answers `403 admin_disabled`; `kovra dev` makes one and prints it.",
    ),
    Variable(
        name="KOVRA_JWT_SECRET",
        field="jwt_secret",
        kind=Secret(length_min=jwt_secret_length_min),
        section=_access,
        meaning="The HS256 key of tenants' JWTs (claims `sub` = tenant id, `role`, `exp`)."
        " Unset, only API keys authenticate.",
    ),
    Variable(
        name="KOVRA_REQUEST_BODY_BYTES_MAX",
        field="request_body_bytes_max",
        kind=Integer(default=request_body_bytes_default, low=1024, high=request_body_bytes_max),
        section=_access,
        meaning="The largest request body, in bytes; larger ones are refused with 413."
        " `POST /v1/batches` has its own, larger bound.",
    ),
    Variable(
        name="KOVRA_IDEMPOTENCY_LEASE_SECONDS",
        field="idempotency_lease_seconds",
        kind=Integer(
            default=idempotency_lease_seconds_default, low=1, high=idempotency_lease_seconds_max
        ),
        section=_access,
        meaning="How long a request in progress holds its `Idempotency-Key`: a retry"
        " meanwhile waits up to 10 s for its answer, then is refused with"
        " `409 idempotency_in_progress`. A process that dies mid-request frees its keys"
        " after this. Keep it longer than the slowest request (a large batch): a shorter"
        " lease lets a retry run beside a slow first attempt, which moves no money twice"
        " (ids are derived from the key) but does the work twice.",
    ),
    Variable(
        name="KOVRA_FX_SOURCE",
        field="fx_source",
        kind=Choice(default="table", choices=("table", "http")),
        section=_fx,
        meaning="Where mid rates come from: `table`, the rate table in Redis (shared by every"
        " process; set by `KOVRA_FX_RATES` or `PUT /admin/v1/fx-rates`), or `http`, the feed"
        " at `KOVRA_FX_FEED_URL`.",
    ),
    Variable(
        name="KOVRA_FX_FEED_URL",
        field="fx_feed_url",
        kind=Url(schemes=("http://", "https://")),
        section=_fx,
        meaning='The rate feed, answering `{"base", "as_of", "rates"}`; required when'
        " `KOVRA_FX_SOURCE=http`.",
    ),
    Variable(
        name="KOVRA_FX_FEED_REFRESH_SECONDS",
        field="fx_feed_refresh_seconds",
        kind=Integer(default=60, low=1, high=86_400),
        section=_fx,
        meaning="How often the feed is read again, in the background.",
    ),
    Variable(
        name="KOVRA_FX_MAX_AGE_SECONDS",
        field="fx_max_age_seconds",
        kind=Integer(default=max_age_seconds_default, low=1, high=7 * 86_400),
        section=_fx,
        meaning="Rates observed longer ago than this are refused: a quote answers `rate_stale`.",
    ),
    Variable(
        name="KOVRA_FX_RATES",
        field="fx_rates",
        kind=Text(shape='a JSON object of `"BASE/QUOTE": "rate"`', check=parse_table),
        section=_fx,
        meaning="Rates written to the rate table at start, replacing what it holds. Unset,"
        " the sandbox seeds plausible rates where the table has none.",
    ),
    Variable(
        name="KOVRA_QUOTE_TTL_SECONDS",
        field="quote_ttl_seconds",
        kind=Integer(default=quote_ttl_seconds_default, low=10, high=quote_ttl_seconds_max),
        section=_fx,
        meaning="How long a quote's rate stays locked; a transfer after that answers"
        " `quote_expired`.",
    ),
    Variable(
        name="KOVRA_QUOTE_RECORD_GRACE_SECONDS",
        field="quote_record_grace_seconds",
        kind=Integer(
            default=record_grace_seconds_default,
            low=record_grace_seconds_min,
            high=record_grace_seconds_max,
        ),
        section=_fx,
        meaning="How long a quote's record stays in Redis past its expiry, so a late caller"
        " hears `quote_expired` or `quote_already_used` and a retried transfer is never"
        " counted twice. About 840 bytes a quote: at high quote rates, shorten it.",
    ),
    Variable(
        name="KOVRA_PENDING_RAIL_BASE_MS",
        field="pending_rail_base_ms",
        kind=Integer(default=1_000, low=1, high=600_000),
        section=_transfers,
        meaning="The first retry delay of a transfer the rail did not answer"
        " (`pending_rail`); retries back off exponentially with full jitter, each at most"
        f" {pending_rail_cap_ms // 1000} s.",
    ),
    Variable(
        name="KOVRA_TRANSFER_LEASE_SECONDS",
        field="transfer_lease_seconds",
        kind=Integer(default=claim_lease_seconds_default, low=1, high=claim_lease_seconds_max),
        section=_transfers,
        meaning="How long a worker holds the transfers it is driving; those of a worker that"
        " died are taken up by another once it has passed. Keep it above a rail's slowest"
        " call (three tries of 5 s): a worker whose lease ran out mid-call sees another send"
        " the same payment again, which the rail answers as a duplicate.",
    ),
    Variable(
        name="KOVRA_RECONCILE_AFTER_SECONDS",
        field="reconcile_after_seconds",
        kind=Integer(default=30, low=1, high=86_400),
        section=_transfers,
        meaning="How old a record left between Postgres and the ledger must be before the"
        " reconciler settles it (a hold or reservation without its row, an admission"
        " without its payout).",
    ),
    Variable(
        name="KOVRA_SANDBOX_LATENCY_MS_MAX",
        field="sandbox_latency_ms_max",
        kind=Integer(default=120, low=0, high=10_000),
        section=_transfers,
        meaning="The slowest answer of the sandbox rails; each batch sent to a rail is"
        " answered after a random 20 ms (or this, if lower) to this many milliseconds.",
    ),
    Variable(
        name="KOVRA_SANDBOX_DUPLICATE_WINDOW_SECONDS",
        field="sandbox_duplicate_window_seconds",
        kind=Integer(
            default=duplicate_window_seconds_default, low=3_600, high=duplicate_window_seconds_max
        ),
        section=_transfers,
        meaning="How long the sandbox rails remember a payment they received, in Redis, like"
        " a scheme's duplicate-check window: sent again meanwhile, it gets its first answer"
        " (or AM05 under another id) and is not paid twice. About 1.5 KB a payment: at high"
        " payment rates, shorten it.",
    ),
    Variable(
        name="KOVRA_COMPLIANCE_MODE",
        field="compliance_mode",
        kind=Choice(default="rules", choices=("rules", "noop")),
        section=_compliance,
        meaning="`rules` screens and scores every payout; `noop` approves everything, for an"
        " emergency only: production refuses it without KOVRA_COMPLIANCE_NOOP_REASON, and"
        " every process that starts with it logs it and records it in the audit trail.",
    ),
    Variable(
        name="KOVRA_COMPLIANCE_NOOP_REASON",
        field="compliance_noop_reason",
        kind=Text(
            shape="why screening is off and who decided (an incident id, an officer)",
            check=_noop_reason,
        ),
        section=_compliance,
        meaning="The explicit emergency setting that lets production run with"
        " KOVRA_COMPLIANCE_MODE=noop; it is written to the log and the audit trail at"
        " every start.",
    ),
    Variable(
        name="KOVRA_COMPLIANCE_CACHE_SECONDS",
        field="compliance_cache_seconds",
        kind=Integer(default=0, low=0, high=3_600),
        section=_compliance,
        meaning="How long a decision is reused for the same tenant, recipient name, country,"
        " currency and amount band (USD 1,000); 0 does not cache.",
    ),
    Variable(
        name="KOVRA_SANCTIONS_FILES",
        field="sanctions_files",
        kind=FileList(),
        section=_compliance,
        meaning="Sanctions lists read from files at start, besides those loaded into Postgres"
        " with `kovra sanctions load`.",
    ),
    Variable(
        name="KOVRA_SCREENING_BLOCK_SCORE",
        field="screening_block_score",
        kind=Integer(default=92, low=1, high=100),
        section=_compliance,
        meaning="A name matching a listed party at this score or above blocks the payout"
        " (`compliance_blocked`).",
    ),
    Variable(
        name="KOVRA_SCREENING_REVIEW_SCORE",
        field="screening_review_score",
        kind=Integer(default=85, low=1, high=100),
        section=_compliance,
        meaning="A match at this score or above, below the block score, opens a case and"
        " the transfer waits `in_review`.",
    ),
    Variable(
        name="KOVRA_SANCTIONS_REFRESH_SECONDS",
        field="sanctions_refresh_seconds",
        kind=Integer(default=60, low=1, high=86_400),
        section=_compliance,
        meaning="How often each process looks for lists loaded since; a change rebuilds its"
        " index off the request path.",
    ),
    Variable(
        name="KOVRA_WEBHOOK_RETRY_SCHEDULE",
        field="webhook_retry_schedule",
        kind=Schedule(default=retry_schedule_default),
        section=_webhooks,
        meaning="The delays between a failed delivery and its retries, each ±20% jitter;"
        " after the last, the delivery is dead-lettered.",
    ),
    Variable(
        name="KOVRA_WEBHOOK_TIMEOUT_SECONDS",
        field="webhook_timeout_seconds",
        kind=Integer(
            default=webhook_timeout_seconds_default, low=1, high=webhook_timeout_seconds_max
        ),
        section=_webhooks,
        meaning="The total time one delivery attempt may take, connection included.",
    ),
    Variable(
        name="KOVRA_EVENT_RETENTION_DAYS",
        field="event_retention_days",
        kind=Integer(default=event_retention_days_default, low=1, high=event_retention_days_max),
        section=_retention,
        meaning="Events and their finished deliveries older than this are deleted by"
        " `kovra worker` (an event with a pending delivery is kept).",
    ),
    Variable(
        name="KOVRA_IDEMPOTENCY_RETENTION_DAYS",
        field="idempotency_retention_days",
        kind=Integer(
            default=idempotency_retention_days_default,
            low=1,
            high=idempotency_retention_days_max,
        ),
        section=_retention,
        meaning="The durable copies of idempotent answers older than this are deleted"
        " (replays come from Redis, which keeps them a day).",
    ),
    Variable(
        name="KOVRA_SECRETS_KEY",
        field="secrets_key",
        kind=Secret(length_min=secrets_key_length_min),
        section=_secrets,
        meaning="The key material that seals webhook signing secrets, customers' personal"
        " data, mandates' bank details and collection runs' messages at rest (AES-256-GCM)."
        " Unset in the sandbox, a random key is kept in `KOVRA_DATA_DIR/secrets.key`."
        " `kovra secrets new-key` prints one.",
    ),
    Variable(
        name="KOVRA_SECRETS_KEYS_PREVIOUS",
        field="secrets_keys_previous",
        kind=SecretList(length_min=secrets_key_length_min),
        section=_secrets,
        meaning="Earlier keys that still open what they sealed, while `kovra secrets reseal`"
        " moves everything under `KOVRA_SECRETS_KEY`.",
    ),
    Variable(
        name=settlement_accounts_variable,
        field="settlement_accounts",
        kind=SettlementAccounts(),
        section=_funding,
        meaning="The platform's settlement bank account in each currency: what"
        " `GET /v1/funding-instructions` shows, what the currency's REGIONAL_SETTLEMENT"
        " ledger account mirrors, and the account bank statements must be for. A currency"
        " without one has no funding instructions (`422 no_funding_instructions`) and its"
        " statements are refused (docs/guides/funding.md).",
    ),
    Variable(
        name="KOVRA_SANDBOX_PROVIDER_SECRET",
        field="sandbox_provider_secret",
        kind=ProviderSecret(),
        section=_collections,
        meaning="The secret the sandbox mandate providers sign their notifications with, and"
        " `POST /v1/providers/{provider}/webhooks` verifies them with. Unset, it is derived"
        " from the secrets key material, so every process of a deployment agrees.",
    ),
    Variable(
        name="KOVRA_SEPA_CREDITOR_ID",
        field="sepa_creditor_identifier",
        kind=Text(
            shape="a SEPA creditor identifier (AT-02), e.g. `DE98ZZZ09999999999`",
            check=_sepa_creditor_identifier,
        ),
        section=_collections,
        meaning="Who Kovra collects SEPA Direct Debits as: the creditor identifier in every"
        " pain.008, beside the EUR settlement account (`KOVRA_SETTLEMENT_ACCOUNTS`) the"
        " collections are paid into. Unset in the sandbox, the published test identifier"
        " `DE98ZZZ09999999999`.",
    ),
    Variable(
        name="KOVRA_PROVIDER_WEBHOOK_SECRETS",
        field="provider_webhook_secrets",
        kind=ProviderSecrets(),
        section=_collections,
        meaning="In production, each mandate provider's notification signing secret, as"
        " `provider=whsec_...` pairs (a provider twice while its secret is rotated). A"
        " provider without one has its notifications refused.",
    ),
    Variable(
        name="KOVRA_SANDBOX_PROVIDER_NOTIFY_URL",
        field="sandbox_provider_notify_url",
        kind=Url(schemes=("http://", "https://")),
        section=_collections,
        meaning="Where the sandbox mandate providers send their notifications: the gateway's"
        " base URL. Unset, `http://127.0.0.1:8000`; `kovra dev` sets it to its own address.",
    ),
    Variable(
        name="KOVRA_MANDATE_PENDING_EXPIRY_SECONDS",
        field="mandate_pending_expiry_seconds",
        kind=Integer(default=mandate_pending_expiry_seconds_default, low=60, high=90 * 86_400),
        section=_collections,
        meaning="A mandate still `pending` this long after its creation expires (its"
        " provider never confirmed it). SEPA mandates unused for 36 months expire too.",
    ),
    Variable(
        name="KOVRA_COLLECTION_LOOKUP_AFTER_SECONDS",
        field="collection_lookup_after_seconds",
        kind=Integer(default=collection_lookup_after_seconds_default, low=1, high=30 * 86_400),
        section=_collections,
        meaning="`GET /v1/collections/{id}` of a collection submitted this long ago and still"
        " `pending` asks its provider (at most once a minute per collection).",
    ),
    Variable(
        name="KOVRA_PARTNER_ATTEMPTS_MAX",
        field="partner_attempts_max",
        kind=Integer(default=partner_attempts_max_default, low=1, high=50),
        section=_automation,
        meaning="How many times a run sends a partner order that gets no answer (each after"
        " a growing backoff) before it voids the order's hold and fails the order; its"
        " money stays in its bucket.",
    ),
    Variable(
        name="KOVRA_PARTNER_TIMEOUT_MS",
        field="partner_timeout_ms",
        kind=Integer(default=partner_timeout_ms_default, low=100, high=partner_timeout_ms_max),
        section=_partners,
        meaning="How long one try of sending a partner order may take (the URL's check and"
        " the partner's answer included) before it counts as no answer.",
    ),
    Variable(
        name="KOVRA_PARTNER_SEND_TRIES",
        field="partner_send_tries_max",
        kind=Integer(default=partner_send_tries_default, low=1, high=partner_send_tries_max),
        section=_partners,
        meaning="Tries per send of a partner order (the first included), with exponential"
        " backoff and full jitter between them; a partner that fails five sends in a row has"
        " its circuit opened for 30 s. The order is sent again later by the orchestration.",
    ),
    Variable(
        name="KOVRA_BUCKETS_PER_CUSTOMER_MAX",
        field="buckets_per_customer_max",
        kind=Integer(
            default=buckets_per_customer_default, low=1, high=buckets_per_customer_limit_max
        ),
        section=_automation,
        meaning="How many buckets one customer may have; one more is `409 too_many_buckets`.",
    ),
    Variable(
        name="KOVRA_RULES_PER_CUSTOMER_MAX",
        field="rules_per_customer_max",
        kind=Integer(default=rules_per_customer_default, low=1, high=rules_per_customer_limit_max),
        section=_automation,
        meaning="How many live allocation rules one customer may have (deleted ones do not"
        " count); one more is `409 too_many_rules`.",
    ),
)


def _production(settings: Settings) -> bool:
    return settings.environment == "production"


rules: tuple[Rule, ...] = (
    Rule(
        problem=f"{settlement_accounts_variable} names a currency KOVRA_CURRENCIES does not enable",
        broken=lambda settings: bool(
            currencies_not_enabled(settings.settlement_accounts, settings.currencies)
        ),
        why="An account in a currency the ledger does not keep could fund no wallet.",
    ),
    Rule(
        problem="KOVRA_SCREENING_REVIEW_SCORE must not exceed KOVRA_SCREENING_BLOCK_SCORE",
        broken=lambda settings: settings.screening_review_score > settings.screening_block_score,
        why="A match is reviewed below the block score and blocked at or above it.",
    ),
    Rule(
        problem="KOVRA_QUOTE_RECORD_GRACE_SECONDS must be at least KOVRA_RECONCILE_AFTER_SECONDS"
        f" + {reconcile_margin_seconds}",
        broken=lambda settings: (
            settings.quote_record_grace_seconds
            < settings.reconcile_after_seconds + reconcile_margin_seconds
        ),
        why="The reconciler gives a voided payout's daily-limit count back from its quote's"
        " record, up to its delay plus a margin after the payout: the record must still be"
        " there.",
    ),
    Rule(
        problem="KOVRA_FX_FEED_URL is required when KOVRA_FX_SOURCE=http",
        broken=lambda settings: settings.fx_source == "http" and not settings.fx_feed_url,
        why="The feed is the only source of rates then.",
    ),
    Rule(
        problem="set TB_ADDRESSES or KOVRA_LEDGER_ADDRESS, not both",
        broken=lambda settings: bool(settings.tb_addresses and settings.ledger_address),
        why="A process uses one ledger.",
    ),
    Rule(
        problem="KOVRA_RECONCILE_AFTER_SECONDS must be at least"
        f" {reconcile_after_seconds_production_min} when KOVRA_ENV=production",
        broken=lambda settings: (
            _production(settings)
            and settings.reconcile_after_seconds < reconcile_after_seconds_production_min
        ),
        why="A transfer's row is written within 15 s of its reservation (a 5 s wait for a"
        " pooled connection, a 10 s statement); the reconciler must not claim its id before"
        " that. Tests shorten the delay in the sandbox.",
    ),
    Rule(
        problem="KOVRA_LEDGER_TIMEOUT_MS must be shorter than KOVRA_RECONCILE_AFTER_SECONDS"
        " when KOVRA_ENV=production",
        broken=lambda settings: (
            _production(settings)
            and settings.ledger_timeout_ms >= settings.reconcile_after_seconds * 1000
        ),
        why="The reconciler gives back admissions with no payout in the ledger once they are"
        " older than its delay: a ledger call must have ended by then.",
    ),
    Rule(
        problem="KOVRA_COMPLIANCE_MODE=noop needs KOVRA_COMPLIANCE_NOOP_REASON when"
        " KOVRA_ENV=production",
        broken=lambda settings: (
            _production(settings)
            and settings.compliance_mode == "noop"
            and not settings.compliance_noop_reason
        ),
        why="Approving every payout unscreened is an emergency measure someone answers for,"
        " never a default left behind by a configuration.",
    ),
    Rule(
        problem="TB_ADDRESSES is required when KOVRA_ENV=production",
        broken=lambda settings: _production(settings) and not settings.tb_addresses,
        why="Production keeps its balances in a TigerBeetle cluster.",
    ),
    Rule(
        problem="KOVRA_SECRETS_KEY is required when KOVRA_ENV=production (it seals webhook"
        " secrets)",
        broken=lambda settings: _production(settings) and not settings.secrets_key,
        why="A database dump must not be enough to sign webhooks.",
    ),
)

documented_elsewhere: tuple[Documented, ...] = (
    Documented(
        name="KOVRA_WORKER_METRICS_PORT",
        default="`0`",
        allowed="0 to 65535",
        meaning="The port on which `kovra worker` serves Prometheus metrics (the default of"
        " `--metrics-port`); 0 serves none.",
        read_by="`kovra worker` (gateway/cli/)",
    ),
    Documented(
        name="PROMETHEUS_MULTIPROC_DIR",
        default="a new temporary directory",
        allowed="a directory path",
        meaning="Where the gateway's workers share their metrics, so `/metrics` answers for"
        " all of them; `kovra serve` makes one when unset.",
        read_by="`kovra serve`, gateway/infra/observability.py",
    ),
)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the environment; `SettingsError` lists every invalid variable."""
    reader = _Reader(os.environ if environ is None else environ)
    values = {variable.field: variable.kind.read(reader, variable.name) for variable in variables}
    settings = Settings(**values)
    reader.problems.extend(rule.problem for rule in rules if rule.broken(settings))
    if reader.problems:
        raise SettingsError(reader.problems)
    return settings


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _table(rows: Sequence[tuple[str, str, str, str]]) -> list[str]:
    lines = ["| variable | default | allowed | meaning |", "|---|---|---|---|"]
    lines.extend("| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows)
    return lines


def reference() -> str:
    """docs/settings.md: every variable, its default, allowed values and meaning."""
    lines = [
        "# Settings",
        "",
        "<!-- Generated from gateway/settings.py; edit the tables there, then run:",
        "     .venv/bin/python -m gateway.settings --reference > docs/settings.md",
        "     tests/gateway/test_settings.py fails when this file and the module differ. -->",
        "",
        "Kovra is configured by environment variables alone. Each process reads them once,"
        " at start, and refuses to start when any is invalid, naming every bad variable at"
        " once. An unset or blank variable takes its default.",
    ]
    sections = dict.fromkeys(variable.section for variable in variables)
    for section in sections:
        rows = [
            (_code(v.name), v.kind.default_text(), v.kind.allowed_text(), v.meaning)
            for v in variables
            if v.section == section
        ]
        lines += ["", f"## {section}", "", *_table(rows)]
    lines += ["", "## Rules between variables", ""]
    lines += [f"- {rule.problem[0].upper()}{rule.problem[1:]}. {rule.why}" for rule in rules]
    lines += ["", "## Read outside the settings module", ""]
    rows = [
        (_code(d.name), d.default, d.allowed, f"{d.meaning} Read by {d.read_by}.")
        for d in documented_elsewhere
    ]
    return "\n".join([*lines, *_table(rows)]) + "\n"


def main(arguments: Sequence[str]) -> int:
    if list(arguments) != ["--reference"]:
        sys.stderr.write("usage: python -m gateway.settings --reference > docs/settings.md\n")
        return 2
    sys.stdout.write(reference())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
