"""What the worker's tests pay with: a tenant with a funded EUR wallet, and EUR payouts made
through the API (`POST /v1/quotes`, `/v1/recipients`, `/v1/transfers`) to a sandbox
recipient, each with the reference that decides its rail's answer."""

from __future__ import annotations

import uuid

import httpx

from gateway.http.ids import decode_id
from loadtest.bench_gateway import provision_unthrottled_tenant
from loadtest.provisioning import recipients


async def paying_tenant(client: httpx.AsyncClient, *, deposit_minor: int) -> dict[str, str]:
    """A new unthrottled tenant's headers, its EUR wallet holding `deposit_minor`."""
    key = await provision_unthrottled_tenant(client, deposits={"EUR": deposit_minor})
    return {"Authorization": f"Bearer {key}"}


async def eur_payout(
    client: httpx.AsyncClient, headers: dict[str, str], *, reference: str
) -> uuid.UUID:
    """A 100.00 EUR payout to a new recipient, accepted (`processing`); its id."""
    quote = await client.post(
        "/v1/quotes",
        headers=headers,
        json={"source_currency": "EUR", "target_currency": "EUR", "source_amount": 10_000},
    )
    assert quote.status_code == 201, quote.text
    recipient = await client.post("/v1/recipients", headers=headers, json=recipients["EUR"])
    assert recipient.status_code == 201, recipient.text
    transfer = await client.post(
        "/v1/transfers",
        headers=headers,
        json={
            "quote_id": quote.json()["id"],
            "recipient_id": recipient.json()["id"],
            "reference": reference,
        },
    )
    assert transfer.status_code == 201, transfer.text
    return uuid.UUID(int=decode_id("tr", transfer.json()["id"]))
