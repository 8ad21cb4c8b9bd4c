"""The collections domain built from settings: the mandate providers this deployment has a
transport to, the secrets their notifications are verified with, and the domain's services
on them. `gateway.runtime` calls `build` once per process.

Only sandbox transports exist: in the sandbox every provider is the simulated one; in
production no provider is configured, so a mandate for one is refused with
`provider_not_configured`, and a notification naming one is a 404.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import asyncpg
import httpx
from redis.asyncio import Redis

from gateway.collections.applying import Applier
from gateway.collections.notifications import Intake
from gateway.collections.service import Collections, CustomerLookup
from gateway.funding.accounts import accounts_in_force
from gateway.infra.sealing import SecretBox
from gateway.settings import Settings
from ledger.collections import CollectionsLedger
from ledger.currencies import CurrencyRegistry
from ledger.service import Ledger
from rails.collections.notifier import SandboxNotifier
from rails.collections.provider import MandateProvider
from rails.collections.providers import build_sandbox_providers
from rails.collections.sepa_dd import SepaCreditor, sandbox_creditor

notify_url_default = "http://127.0.0.1:8000"
secret_prefix = "whsec_"  # noqa: S105 - the public prefix of a secret, not a secret.
derived_secret_bytes = 32
notifier_timeout_seconds = 10.0
_derivation_label = b"kovra.sandbox-provider-secret.v1"


# SEPA collects euros only.
sandbox_creditor_currency = "EUR"


def derived_sandbox_secret(key_material: str) -> str:
    """The sandbox providers' `whsec_` secret, derived from the deployment's secrets key
    material: every process that shares the material derives the same secret, and the
    secret says nothing of the material."""
    digest = hmac.new(key_material.encode(), _derivation_label, hashlib.sha256).digest()
    return secret_prefix + base64.b64encode(digest[:derived_secret_bytes]).decode()


def notification_secrets(
    settings: Settings, *, key_material: str, providers: Sequence[str]
) -> dict[str, list[str]]:
    """The secrets each provider's notifications may be signed with."""
    if settings.sandbox:
        secret = settings.sandbox_provider_secret or derived_sandbox_secret(key_material)
        return {name: [secret] for name in providers}
    secrets: dict[str, list[str]] = {}
    for name, secret in settings.provider_webhook_secrets:
        secrets.setdefault(name, []).append(secret)
    return secrets


def sepa_creditor(settings: Settings, currencies: CurrencyRegistry) -> SepaCreditor:
    """Who SEPA collections are made as (`KOVRA_SEPA_CREDITOR_ID`) and the account they are
    paid into: the EUR settlement account, the one the EUR REGIONAL_SETTLEMENT ledger
    account mirrors and funding instructions show. Without EUR (or its account), the
    sandbox's test creditor."""
    accounts = accounts_in_force(
        settings.settlement_accounts, sandbox=settings.sandbox, currencies=currencies
    )
    euro = accounts.get(sandbox_creditor_currency)
    if euro is None or "bic" not in euro.bank_details:
        return sandbox_creditor
    return SepaCreditor(
        name=euro.holder_name,
        identifier=settings.sepa_creditor_identifier or sandbox_creditor.identifier,
        iban=euro.bank_details["iban"],
        bic=euro.bank_details["bic"],
    )


def providers_for(
    settings: Settings, redis: Redis, currencies: CurrencyRegistry
) -> dict[str, MandateProvider]:
    """The providers this deployment has a transport to, by name."""
    if not settings.sandbox:
        return {}
    creditor = sepa_creditor(settings, currencies)
    built = build_sandbox_providers(redis=redis, creditor=creditor)
    return {name.value: provider for name, provider in built.items()}


@dataclass(kw_only=True, frozen=True)
class CollectionsDomain:
    """The domain's services of one process."""

    providers: Mapping[str, MandateProvider]
    secrets: Mapping[str, Sequence[str]]
    # What the sandbox providers sign their notifications with (None outside the sandbox).
    sandbox_secret: str | None
    applier: Applier
    collections: Collections
    intake: Intake


def build(
    settings: Settings,
    *,
    pool: asyncpg.Pool,
    redis: Redis,
    ledger: Ledger,
    secret_box: SecretBox,
    key_material: str,
    customers: CustomerLookup,
) -> CollectionsDomain:
    providers = providers_for(settings, redis, ledger.currencies)
    secrets = notification_secrets(settings, key_material=key_material, providers=list(providers))
    applier = Applier(pool=pool, ledger=CollectionsLedger(ledger), providers=providers)
    return CollectionsDomain(
        providers=providers,
        secrets=secrets,
        sandbox_secret=next(iter(secrets.values()))[0] if settings.sandbox and secrets else None,
        applier=applier,
        collections=Collections(
            pool=pool,
            redis=redis,
            secret_box=secret_box,
            currencies=ledger.currencies,
            providers=providers,
            customers=customers,
            applier=applier,
            lookup_after_seconds=settings.collection_lookup_after_seconds,
        ),
        intake=Intake(pool=pool, providers=providers, secrets=secrets),
    )


def sandbox_notifier(
    settings: Settings, domain: CollectionsDomain, *, redis: Redis
) -> SandboxNotifier | None:
    """The sandbox providers' peer that sends their notifications to the gateway, signed;
    None outside the sandbox."""
    if domain.sandbox_secret is None:
        return None
    return SandboxNotifier(
        redis,
        base_url=settings.sandbox_provider_notify_url or notify_url_default,
        secret=domain.sandbox_secret,
        client=lambda: httpx.AsyncClient(timeout=notifier_timeout_seconds),
    )
