"""Orchestration runs through the real HTTP API of a running deployment (gateway, worker,
ledger server, Postgres, Redis as separate processes), the sandbox provider and partner as
real peers: a pull's collection is settled by the provider's signed notification, split by
the customer's rules into buckets and paid on to the partner, every step shown with its
state; runs are listed by customer and status; a pull that cannot run is refused naming the
field and stores nothing; another tenant's run is a 404."""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.gateway.e2e.conftest import Deployment, bearer, running_deployment

redis_db = 6
wait_seconds_max = 30.0
poll_seconds = 0.2


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp("orchestrations")
    with running_deployment(tmp, redis_db=redis_db) as running:
        yield running


class Tenant:
    """A tenant of the deployment with a customer whose mandate is active."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        _, key = deployment.tenant(name="orchestrations")
        self.headers = bearer(key)
        self.customer = self.created("/v1/customers", {"name": "Erika M", "country": "DE"})["id"]
        consent = {
            "accepted_at": datetime.datetime.now(tz=datetime.UTC).isoformat(),
            "ip": "203.0.113.7",
            "user_agent": "e2e",
        }
        mandate = self.created(
            "/v1/mandates",
            {
                "customer_id": self.customer,
                "provider": "sepa_dd",
                "currency": "EUR",
                "bank_details": {"iban": "DE89370400440532013000", "bic": "COBADEFFXXX"},
                "reference": "salary split",
                "consent": consent,
            },
        )
        self.mandate = self.wait(f"/v1/mandates/{mandate['id']}", "active")["id"]

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(
            f"{self.deployment.base_url}{path}", json=body, headers=self.headers, timeout=30
        )

    def created(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.post(path, body)
        assert response.status_code == 201, response.text
        found: dict[str, Any] = response.json()
        return found

    def get(self, path: str, *, status: int = 200) -> dict[str, Any]:
        response = httpx.get(f"{self.deployment.base_url}{path}", headers=self.headers, timeout=30)
        assert response.status_code == status, response.text
        found: dict[str, Any] = response.json()
        return found

    def wait(self, path: str, *statuses: str) -> dict[str, Any]:
        deadline = time.monotonic() + wait_seconds_max
        while True:
            found = self.get(path)
            if found["status"] in statuses or time.monotonic() > deadline:
                assert found["status"] in statuses, found
                return found
            time.sleep(poll_seconds)

    def target(self, kind: str, partner_reference: str | None, rule: dict[str, Any]) -> str:
        """A bucket (paid on to a sandbox partner, when a reference is given) and its rule."""
        body: dict[str, Any] = {"kind": kind, "name": kind, "currency": "EUR"}
        if partner_reference is not None:
            partner = self.created(
                "/v1/partners",
                {
                    "kind": kind,
                    "name": f"{kind} partner",
                    "currency": "EUR",
                    "adapter": "sandbox",
                    "reference": partner_reference,
                },
            )
            body["partner_id"] = partner["id"]
        bucket = self.created(f"/v1/customers/{self.customer}/buckets", body)
        self.created(f"/v1/customers/{self.customer}/rules", {"bucket_id": bucket["id"], **rule})
        return str(bucket["id"])


def test_a_pull_runs_through_every_step_to_the_partner(deployment: Deployment) -> None:
    tenant = Tenant(deployment)
    savings = tenant.target(
        "savings", "SAV-77", {"kind": "percentage", "percent_bps": 2_500, "priority": 1}
    )
    tax = tenant.target("tax", None, {"kind": "fixed", "amount": 1_000, "priority": 2})
    pulled = tenant.created(
        f"/v1/customers/{tenant.customer}/pulls",
        {"mandate_id": tenant.mandate, "amount": 10_003, "reference": "March"},
    )
    assert (pulled["status"], pulled["trigger"], pulled["reference"]) == (
        "pending",
        "user",
        "March",
    )
    run = tenant.wait(f"/v1/orchestrations/{pulled['id']}", "completed", "failed")
    assert run["status"] == "completed", run
    assert run["amounts"] == {"collected": 10_003, "allocated": 3_500, "unallocated": 6_503}
    assert [(s["step"], s["state"]) for s in run["steps"]] == [
        (step, "succeeded")
        for step in (
            "intent", "collect", "confirmation", "allocation", "partner_orders", "delivery",
            "notification",
        )
    ]  # fmt: skip
    assert sorted((line["bucket_id"], line["amount"]) for line in run["lines"]) == sorted(
        [(savings, 2_500), (tax, 1_000)]
    )
    (order,) = run["orders"]
    assert (order["bucket_id"], order["status"], order["amount"]) == (savings, "delivered", 2_500)
    collection = tenant.get(f"/v1/collections/{run['collection_id']}")
    assert collection["status"] == "succeeded"
    buckets = {b["id"]: b for b in tenant.get(f"/v1/customers/{tenant.customer}/buckets")["data"]}
    assert (buckets[savings]["balance"], buckets[savings]["delivered"]) == (0, 2_500)
    assert buckets[tax]["balance"] == 1_000
    (eur,) = [b for b in tenant.get("/v1/balances")["data"] if b["currency"] == "EUR"]
    assert eur["posted"] == 6_503
    listed = tenant.get(f"/v1/orchestrations?customer_id={tenant.customer}&status=completed")
    assert [found["id"] for found in listed["data"]] == [run["id"]]
    assert "steps" not in listed["data"][0]
    assert tenant.get("/v1/orchestrations?status=failed")["data"] == []


def test_a_pull_that_cannot_run_is_refused_and_another_tenants_run_is_hidden(
    deployment: Deployment,
) -> None:
    tenant = Tenant(deployment)
    pulls = f"/v1/customers/{tenant.customer}/pulls"
    missing = tenant.post(pulls, {"mandate_id": tenant.mandate})
    assert missing.status_code == 422
    assert [e["field"] for e in missing.json()["errors"]] == ["amount"]
    malformed = tenant.post(pulls, {"mandate_id": "nope", "amount": 100})
    assert (malformed.status_code, malformed.json()["errors"][0]["field"]) == (422, "mandate_id")
    unknown = tenant.post(pulls, {"mandate_id": "mdt_" + "0" * 26, "amount": 100})
    assert unknown.status_code == 404
    other = Tenant(deployment)
    theirs = tenant.post(
        f"/v1/customers/{other.customer}/pulls", {"mandate_id": other.mandate, "amount": 100}
    )
    assert theirs.status_code == 404
    assert tenant.get("/v1/orchestrations")["data"] == []
    run = other.created(
        f"/v1/customers/{other.customer}/pulls", {"mandate_id": other.mandate, "amount": 100}
    )
    tenant.get(f"/v1/orchestrations/{run['id']}", status=404)
    bad_status = httpx.get(
        f"{deployment.base_url}/v1/orchestrations?status=done", headers=tenant.headers, timeout=30
    )
    assert (bad_status.status_code, bad_status.json()["errors"][0]["field"]) == (422, "status")
