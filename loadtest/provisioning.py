"""Everything a load run needs, created through Kovra's APIs once per run.

Setup goes through the admin API (`KOVRA_ADMIN_TOKEN`) and the tenant API, never the
database, so the suite runs against any Kovra it can reach: a limit policy that does not
throttle the run (the highest requests per minute and daily volume the admin API accepts),
platform liquidity in every target currency, and several tenants on that policy, each with
its API key, a deposit and one recipient per corridor. Several tenants keep per-tenant
limits realistic: each tenant's rate limit is spent by its share of the users only.
Deposits are a sandbox feature, so the target must run with `KOVRA_ENV=sandbox`.

The module does not import locust, which patches the standard library when imported.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

import httpx
import msgspec

admin_token_variable = "KOVRA_ADMIN_TOKEN"  # noqa: S105 (the name, not a secret)
tenant_count_variable = "KOVRA_LOCUST_TENANTS"
# Traffic is spread over several tenants, as in production, so per-tenant state (rate limit,
# daily volume, wallet) is not one hot key; each tenant's policy allows the API's maximum.
tenant_count_default = 24
tenant_count_max = 500
requests_per_minute_max = 1_000_000
daily_limit_usd_minor_max = 10**15
request_timeout_seconds = 30.0
source_currency = "EUR"
# One EUR deposit per tenant pays for hours of transfers of at most 100 EUR each.
deposit_minor = 10**14
# Platform liquidity per target currency, funded once per run.
liquidity_minor = {"EUR": 10**15, "GBP": 10**15, "IDR": 10**17}
# One recipient per corridor; the names are ordinary ones that sanctions screening passes.
recipients = {
    "IDR": {
        "name": "PT Pemasok",
        "country": "ID",
        "currency": "IDR",
        "bank_details": {"bank_code": "014", "account_number": "1234567890"},
    },
    "EUR": {
        "name": "Lieferant GmbH",
        "country": "DE",
        "currency": "EUR",
        "bank_details": {"iban": "DE89370400440532013000", "bic": "COBADEFFXXX"},
    },
    "GBP": {
        "name": "Supplier Ltd",
        "country": "GB",
        "currency": "GBP",
        "bank_details": {"sort_code": "08-99-99", "account_number": "66374958"},
    },
}


class ProvisioningError(RuntimeError):
    """Setup could not create what the run needs; the message says which call failed."""


class LoadTenant(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: int
    api_key: str
    recipient_ids: dict[str, str]  # By the recipient's currency.


class LoadSetup(msgspec.Struct, frozen=True, kw_only=True):
    run_id: str
    limit_policy: str
    tenants: tuple[LoadTenant, ...]


def tenant_count_from_environment() -> int:
    raw = os.environ.get(tenant_count_variable, "").strip()
    if not raw:
        return tenant_count_default
    try:
        count = int(raw)
    except ValueError:
        raise ProvisioningError(
            f"{tenant_count_variable} must be an integer, got {raw!r}"
        ) from None
    if not 1 <= count <= tenant_count_max:
        raise ProvisioningError(
            f"{tenant_count_variable} must be between 1 and {tenant_count_max}, got {count}"
        )
    return count


def admin_token_from_environment() -> str:
    token = os.environ.get(admin_token_variable, "").strip()
    if not token:
        raise ProvisioningError(
            f"{admin_token_variable} is not set: the load test creates its tenants through "
            "the admin API and needs the target's admin token"
        )
    return token


def provision(base_url: str, *, admin_token: str, tenant_count: int) -> LoadSetup:
    """Create the policy, liquidity and tenants of one run, named after a fresh run id."""
    run_id = secrets.token_hex(4)
    limit_policy = f"locust-{run_id}"
    with httpx.Client(base_url=base_url, timeout=request_timeout_seconds) as client:
        admin = {"Authorization": f"Bearer {admin_token}"}
        _call(
            client,
            "/admin/v1/limit-policies",
            admin,
            {
                "name": limit_policy,
                "requests_per_minute": requests_per_minute_max,
                "daily_limit_usd_minor": daily_limit_usd_minor_max,
            },
        )
        for currency, amount in liquidity_minor.items():
            _call(
                client,
                "/admin/v1/liquidity",
                admin,
                {"currency": currency, "amount": amount, "reference": limit_policy},
            )
        tenants = tuple(
            _tenant(client, admin, name=f"{limit_policy}-{index}", limit_policy=limit_policy)
            for index in range(tenant_count)
        )
    return LoadSetup(run_id=run_id, limit_policy=limit_policy, tenants=tenants)


def _tenant(
    client: httpx.Client, admin: dict[str, str], *, name: str, limit_policy: str
) -> LoadTenant:
    created = _call(client, "/admin/v1/tenants", admin, {"name": name, "tier": "enterprise"})
    tenant_id, api_key = int(created["tenant_id"]), str(created["api_key"])
    _call(
        client,
        f"/admin/v1/tenants/{tenant_id}/policies",
        admin,
        {"pricing_policy": "enterprise", "limit_policy": limit_policy},
        method="PUT",
    )
    tenant = {"Authorization": f"Bearer {api_key}"}
    _call(
        client,
        "/v1/deposits",
        tenant,
        {"currency": source_currency, "amount": deposit_minor, "reference": name},
    )
    recipient_ids = {
        currency: str(_call(client, "/v1/recipients", tenant, body)["id"])
        for currency, body in recipients.items()
    }
    return LoadTenant(tenant_id=tenant_id, api_key=api_key, recipient_ids=recipient_ids)


def _call(
    client: httpx.Client,
    path: str,
    headers: dict[str, str],
    body: dict[str, Any],
    *,
    method: str = "POST",
) -> dict[str, Any]:
    try:
        response = client.request(method, path, headers=headers, json=body)
    except httpx.HTTPError as error:
        raise ProvisioningError(f"{method} {path}: {error!r}") from None
    if response.status_code >= 300:
        raise ProvisioningError(
            f"{method} {path} answered {response.status_code}: {response.text[:500]}"
        )
    answer: dict[str, Any] = response.json()
    return answer
