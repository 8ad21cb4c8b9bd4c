"""Money in through the real HTTP API of a running deployment (gateway, worker, ledger
server, Postgres, Redis as separate processes), with the sandbox providers as real peers:
their notifications arrive as signed HTTP requests from the worker's notifier.

For each provider: a mandate becomes active, a collection succeeds and credits the wallet to
the minor unit. Then the sandbox's stories: a failure with its reason code, a declined
mandate that stays pending, a return that takes the money back, a return after the money
left (the wallet at zero, the shortfall an operations exception), a deactivated mandate that
refuses collections; a forged notification is a 401 that stores nothing, a replayed one a
200 that changes nothing; the notification route takes no key and knows its providers."""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from rails.collections.notifications import NotificationBody, NotificationData, sign_notification
from tests.gateway.e2e.conftest import Deployment, bearer, running_deployment

redis_db = 5
sandbox_secret = "whsec_" + "c2FuZGJveC1wcm92aWRlci1zZWNyZXQtZm9yLXRlc3Rz"
wait_seconds_max = 30.0
poll_seconds = 0.2
bank_details = {
    "paywithaccount": ("NGN", {"bank_code": "058", "account_number": "0123456785"}),
    "sepa_dd": ("EUR", {"iban": "DE89370400440532013000", "bic": "COBADEFFXXX"}),
    "bacs_dd": ("GBP", {"sort_code": "089999", "account_number": "66374958"}),
}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    environment = {
        "KOVRA_CURRENCIES": "EUR,GBP,USD,NGN",
        "KOVRA_SANDBOX_PROVIDER_SECRET": sandbox_secret,
    }
    tmp = tmp_path_factory.mktemp("collections")
    with running_deployment(tmp, redis_db=redis_db, environment=environment) as running:
        yield running


class Tenant:
    """A tenant of the deployment, with its key and one customer."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        _, self.key = deployment.tenant(name="collections")
        self.headers = bearer(self.key)
        self.customer = self.post(
            "/v1/customers", {"name": "Adaeze Okafor", "country": "NG"}
        ).json()["id"]

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(
            f"{self.deployment.base_url}{path}", json=body, headers=self.headers, timeout=30
        )

    def get(self, path: str) -> dict[str, Any]:
        response = httpx.get(f"{self.deployment.base_url}{path}", headers=self.headers, timeout=30)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def mandate(self, provider: str, *, reference: str = "membership") -> dict[str, Any]:
        currency, details = bank_details[provider]
        consent = {
            "accepted_at": datetime.datetime.now(tz=datetime.UTC).isoformat(),
            "ip": "203.0.113.7",
            "user_agent": "e2e",
        }
        body = {
            "customer_id": self.customer,
            "provider": provider,
            "currency": currency,
            "bank_details": details,
            "reference": reference,
            "consent": consent,
        }
        created = self.post("/v1/mandates", body)
        assert created.status_code == 201, created.text
        return created.json()  # type: ignore[no-any-return]

    def active_mandate(self, provider: str) -> dict[str, Any]:
        made = self.mandate(provider)
        return self.wait(f"/v1/mandates/{made['id']}", "active")

    def collect(self, mandate: dict[str, Any], amount: int, reference: str) -> dict[str, Any]:
        created = self.post(
            f"/v1/mandates/{mandate['id']}/collect", {"amount": amount, "reference": reference}
        )
        assert created.status_code == 201, created.text
        return created.json()  # type: ignore[no-any-return]

    def wait(self, path: str, status: str) -> dict[str, Any]:
        """The object once it reaches `status` (failing after the wait's bound)."""
        deadline = time.monotonic() + wait_seconds_max
        while True:
            found = self.get(path)
            if found["status"] == status or time.monotonic() > deadline:
                assert found["status"] == status, found
                return found
            time.sleep(poll_seconds)

    def balance(self, currency: str) -> dict[str, Any]:
        balances = self.get("/v1/balances")["data"]
        found = [b for b in balances if b["currency"] == currency]
        return found[0] if found else {"available": 0, "posted": 0, "pending": 0}


def _query(deployment: Deployment, sql: str, *arguments: object) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(deployment.database_url)
        try:
            return await connection.fetch(sql, *arguments)
        finally:
            await connection.close()

    return asyncio.run(run())


@pytest.mark.parametrize("provider", sorted(bank_details))
def test_a_collection_under_an_active_mandate_credits_the_wallet(
    deployment: Deployment, provider: str
) -> None:
    tenant = Tenant(deployment)
    currency = bank_details[provider][0]
    mandate = tenant.active_mandate(provider)
    assert mandate["provider_reference"]
    assert "••••" in str(mandate["bank_details"])
    collection = tenant.collect(mandate, 12_345, "January")
    done = tenant.wait(f"/v1/collections/{collection['id']}", "succeeded")
    assert done["provider_reference"]
    assert done["sequence_type"] == "first"
    assert tenant.balance(currency)["available"] == 12_345
    messages = tenant.get(f"/v1/collections/{collection['id']}/messages")["data"]
    if provider == "sepa_dd":
        (pain008,) = messages
        assert "pain.008" in pain008["xml"]
        assert done["end_to_end_id"] in pain008["xml"]
    else:
        assert messages == []
    second = tenant.collect(mandate, 100, "February")
    assert tenant.wait(f"/v1/collections/{second['id']}", "succeeded")["sequence_type"] == (
        "recurring"
    )
    assert tenant.balance(currency)["available"] == 12_445
    listed = tenant.get(f"/v1/collections?mandate_id={mandate['id']}&status=succeeded")
    assert {c["id"] for c in listed["data"]} == {collection["id"], second["id"]}


def test_a_failure_says_its_reason_and_moves_nothing(deployment: Deployment) -> None:
    tenant = Tenant(deployment)
    mandate = tenant.active_mandate("sepa_dd")
    collection = tenant.collect(mandate, 5_000, "sandbox:fail:AM04")
    failed = tenant.wait(f"/v1/collections/{collection['id']}", "failed")
    assert failed["failure_code"] == "AM04"
    assert failed["failure_description"]
    assert tenant.balance("EUR")["posted"] == 0


def test_a_declined_mandate_stays_pending_and_refuses_collections(
    deployment: Deployment,
) -> None:
    tenant = Tenant(deployment)
    mandate = tenant.mandate("bacs_dd", reference="sandbox:decline")
    time.sleep(3)  # Long enough for any notification to have come.
    found = tenant.get(f"/v1/mandates/{mandate['id']}")
    assert found["status"] == "pending"
    assert found["provider_reference"]
    refused = tenant.post(
        f"/v1/mandates/{mandate['id']}/collect", {"amount": 100, "reference": "too early"}
    )
    assert refused.status_code == 409
    assert refused.json()["code"] == "mandate_inactive"


def test_a_return_takes_the_money_back(deployment: Deployment) -> None:
    tenant = Tenant(deployment)
    mandate = tenant.active_mandate("sepa_dd")
    collection = tenant.collect(mandate, 7_000, "sandbox:return:MD06")
    returned = tenant.wait(f"/v1/collections/{collection['id']}", "returned")
    assert (returned["failure_code"], returned["returned_amount"]) == ("MD06", 7_000)
    assert tenant.balance("EUR")["posted"] == 0
    for event_type in ("collection.succeeded", "collection.returned"):
        events = tenant.get(f"/v1/events?type={event_type}")["data"]
        assert [event["data"]["id"] for event in events] == [collection["id"]]


def test_a_return_after_the_money_left_records_the_shortfall(deployment: Deployment) -> None:
    tenant = Tenant(deployment)
    mandate = tenant.active_mandate("sepa_dd")
    collection = tenant.collect(mandate, 9_000, "sandbox:return:MD06")
    tenant.wait(f"/v1/collections/{collection['id']}", "succeeded")
    hold = tenant.post("/v1/holds", {"currency": "EUR", "amount": 9_000})
    assert hold.status_code == 201, hold.text
    captured = tenant.post(f"/v1/holds/{hold.json()['id']}/capture", {})
    assert captured.status_code == 200, captured.text
    returned = tenant.wait(f"/v1/collections/{collection['id']}", "returned")
    assert returned["returned_amount"] == 0
    assert tenant.balance("EUR")["available"] == 0
    # Operations see it on the admin plane, naming the collection the partner knows.
    listed = httpx.get(
        f"{deployment.base_url}/admin/v1/exceptions",
        params={"kind": "collection_return_shortfall", "status": "open", "limit": "100"},
        headers=deployment.admin(),
        timeout=30,
    )
    assert listed.status_code == 200, listed.text
    shortfalls = [
        (exception["amount"], exception["currency"])
        for exception in listed.json()["data"]
        if exception["object_id"] == collection["id"]
    ]
    assert shortfalls == [(9_000, "EUR")]


def test_a_deactivated_mandate_refuses_collections(deployment: Deployment) -> None:
    tenant = Tenant(deployment)
    mandate = tenant.active_mandate("paywithaccount")
    deactivated = tenant.post(f"/v1/mandates/{mandate['id']}/deactivate", {})
    assert deactivated.status_code == 200, deactivated.text
    assert deactivated.json()["status"] == "deactivated"
    refused = tenant.post(
        f"/v1/mandates/{mandate['id']}/collect", {"amount": 100, "reference": "after"}
    )
    assert refused.status_code == 409
    assert refused.json()["code"] == "mandate_inactive"


def _notification(reference: str, event_id: str) -> tuple[dict[str, str], bytes]:
    body = NotificationBody(
        id=event_id,
        type="collection.succeeded",
        data=NotificationData(reference=reference, amount=1, currency="EUR", reason_code=None),
    )
    return sign_notification(secret=sandbox_secret, body=body, timestamp_seconds=int(time.time()))


def _stored(deployment: Deployment) -> int:
    (row,) = _query(deployment, "SELECT count(*) AS n FROM provider_notifications")
    return int(row["n"])


def test_a_forged_notification_is_refused_and_a_replay_changes_nothing(
    deployment: Deployment,
) -> None:
    tenant = Tenant(deployment)
    mandate = tenant.active_mandate("sepa_dd")
    collection = tenant.collect(mandate, 2_000, "January")
    done = tenant.wait(f"/v1/collections/{collection['id']}", "succeeded")
    url = f"{deployment.base_url}/v1/providers/sepa_dd/webhooks"
    headers, body = _notification(done["provider_reference"], "forged-1")
    before = _stored(deployment)
    forged = httpx.post(
        url, content=body, headers={**headers, "webhook-signature": "v1,Zm9yZ2Vk"}, timeout=30
    )
    assert forged.status_code == 401
    assert forged.json()["code"] == "invalid_signature"
    unsigned = httpx.post(url, content=body, timeout=30)
    assert unsigned.status_code == 401
    assert _stored(deployment) == before
    first = httpx.post(url, content=body, headers=headers, timeout=30)
    assert first.status_code == 200, first.text
    replayed = httpx.post(url, content=body, headers=headers, timeout=30)
    assert replayed.status_code == 200
    assert replayed.json() == {"received": True, "duplicate": True}
    time.sleep(1)  # The worker applies what was stored: a repeat of a success.
    assert tenant.balance("EUR")["posted"] == 2_000
    assert tenant.get(f"/v1/collections/{collection['id']}")["status"] == "succeeded"
    keyless_get = httpx.get(url, timeout=30)  # Only the provider's POST goes without a key.
    assert keyless_get.status_code == 401
    assert keyless_get.json()["code"] == "unauthorized"
    unknown = httpx.post(
        f"{deployment.base_url}/v1/providers/nobody/webhooks", content=body, timeout=30
    )
    assert unknown.status_code == 404
