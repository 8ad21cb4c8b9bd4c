"""The tenant a crash test pays from, set up through the admin and tenant APIs.

The default tiers charge no fee (their pricing is a margin only), so a tenant on one of them
never moves a fee leg, and a check that "fees are included" would hold whatever the fee legs
did. The crash tests' tenant is on a pricing policy of its own that charges a fee in basis
points and a fixed one, and on a limit policy that neither throttles nor caps what the tests
send. Its liquidity, deposit and recipients are journaled like every other request.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import httpx

from tests.gateway.e2e.answers import Answer, Journal
from tests.gateway.e2e.conftest import admin_token
from tests.gateway.e2e.stack import Stack

fee_bps = 50
fee_fixed_usd_minor = 25
margin_bps = 40
requests_per_minute = 100_000
daily_limit_usd_minor = 10**15
recipient_bodies: dict[str, dict[str, Any]] = {
    "IDR": {
        "name": "PT A",
        "country": "ID",
        "currency": "IDR",
        "bank_details": {"bank_code": "014", "account_number": "1234567890"},
    },
    "EUR": {
        "name": "B GmbH",
        "country": "DE",
        "currency": "EUR",
        "bank_details": {"iban": "DE89370400440532013000", "bic": "COBADEFFXXX"},
    },
}


@dataclass(frozen=True, kw_only=True)
class Tenant:
    """The test's tenant, the journal of its requests, and its recipient per currency."""

    tenant_id: int
    journal: Journal
    recipients: dict[str, str]


def open_tenant(stack: Stack, *, liquidity_minor: dict[str, int], deposit_minor: int) -> Tenant:
    """Fund the platform's liquidity, create the tenant on fee-charging pricing, deposit
    `deposit_minor` EUR cents and add an IDR and a EUR recipient."""
    admin = Journal(stack.base)
    headers = {"Authorization": f"Bearer {admin_token}"}
    for currency, amount in liquidity_minor.items():
        body = {"currency": currency, "amount": amount}
        _created(admin.post("/admin/v1/liquidity", body, headers=headers))
    name = f"crash-{secrets.token_hex(4)}"
    pricing = {"name": name, "margin_bps": margin_bps, "fee_bps": fee_bps}
    pricing["fee_fixed_usd_minor"] = fee_fixed_usd_minor
    _created(admin.post("/admin/v1/pricing-policies", pricing, headers=headers))
    limits = {
        "name": name,
        "requests_per_minute": requests_per_minute,
        "daily_limit_usd_minor": daily_limit_usd_minor,
    }
    _created(admin.post("/admin/v1/limit-policies", limits, headers=headers))
    created = _created(admin.post("/admin/v1/tenants", {"name": name}, headers=headers))
    tenant_id = int(created["tenant_id"])
    httpx.put(
        f"{stack.base}/admin/v1/tenants/{tenant_id}/policies",
        json={"pricing_policy": name, "limit_policy": name},
        headers=headers,
        timeout=30,
    ).raise_for_status()
    journal = Journal(stack.base, api_key=created["api_key"])
    _created(journal.post("/v1/deposits", {"currency": "EUR", "amount": deposit_minor}))
    recipients = {
        currency: _created(journal.post("/v1/recipients", body))["id"]
        for currency, body in recipient_bodies.items()
    }
    return Tenant(tenant_id=tenant_id, journal=journal, recipients=recipients)


def _created(answer: Answer) -> Any:
    assert answer.created, f"set-up refused: {answer.status} {answer.reply}"
    return answer.reply
