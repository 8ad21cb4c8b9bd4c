"""Webhooks end to end: a real gateway, a real `kovra worker` and a real local receiver.

The event log pages with its cursor. Endpoints are managed through the API (admin keys
only, the secret shown once, filters and URLs checked, another tenant's endpoint is 404),
and each sets its own in-flight bound, changed with PATCH like its URL, filter and
description (each refusal names its field and changes nothing).
A deposit's event arrives signed so that `standardwebhooks` verifies it and shows as
delivered in `GET /v1/events/{id}`; a 500 is retried and then delivered; a receiver that
always fails ends dead-lettered and gets the event after `POST /v1/events/{id}/redeliver`;
during a secret rotation both secrets verify; and a worker killed (SIGKILL) mid-delivery
delivers after restart with the same webhook-id.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests import redis_server
from tests.gateway.e2e.conftest import admin_token, free_port
from tests.gateway.e2e.stack import Stack
from tests.gateway.webhooks.receiver import Receiver, hang

wait_seconds_max = 30.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    deployment = Stack(
        tmp_path_factory.mktemp("webhooks"),
        redis_url=redis_server.redis_url(10),
        environment={
            "KOVRA_WEBHOOK_RETRY_SCHEDULE": "0.3,0.3",
            "KOVRA_WEBHOOK_TIMEOUT_SECONDS": "2",
            "KOVRA_WORKER_METRICS_PORT": str(free_port()),
        },
    )
    try:
        deployment.start()
        yield deployment
    finally:
        deployment.close()


class Tenant:
    def __init__(self, stack: Stack) -> None:
        self.base = stack.base
        created = httpx.post(
            f"{stack.base}/admin/v1/tenants",
            headers={"Authorization": f"Bearer {admin_token}"},
            json={"name": "hooks", "tier": "enterprise"},
            timeout=30,
        )
        assert created.status_code == 201, created.text
        self.id = int(created.json()["tenant_id"])
        self.headers = {"Authorization": f"Bearer {created.json()['api_key']}"}

    def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return httpx.post(f"{self.base}{path}", json=body or {}, headers=self.headers, timeout=30)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.base}{path}", headers=self.headers, timeout=30)

    def patch(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.patch(f"{self.base}{path}", json=body, headers=self.headers, timeout=30)

    def endpoint(self, url: str, events: list[str] | None = None) -> dict[str, Any]:
        response = self.post(
            "/v1/webhook-endpoints", {"url": url, "enabled_events": events or ["*"]}
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def deposit(self, amount: int = 10_000) -> None:
        response = self.post("/v1/deposits", {"currency": "EUR", "amount": amount})
        assert response.status_code == 201, response.text

    def only_event(self, event_type: str) -> dict[str, Any]:
        page = self.get(f"/v1/events?type={event_type}").json()["data"]
        assert len(page) == 1, page
        event: dict[str, Any] = page[0]
        return event


def eventually(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + wait_seconds_max
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("the condition did not hold in time")


def delivery_status(tenant: Tenant, event_id: str) -> list[tuple[str, int]]:
    deliveries = tenant.get(f"/v1/events/{event_id}").json()["deliveries"]
    return [(d["status"], d["attempts"]) for d in deliveries]


def test_endpoints_are_managed_by_admin_keys_and_checked(stack: Stack) -> None:
    tenant = Tenant(stack)
    created = tenant.endpoint("http://127.0.0.1:9/hooks", ["transfer.*", "deposit.posted"])
    assert created["secret"].startswith("whsec_")
    assert created["id"].startswith("we_")
    assert created["status"] == "enabled"
    read = tenant.get(f"/v1/webhook-endpoints/{created['id']}").json()
    assert read["secret"] is None
    assert read["enabled_events"] == ["transfer.*", "deposit.posted"]
    assert [e["id"] for e in tenant.get("/v1/webhook-endpoints").json()["data"]] == [created["id"]]

    bad_filter = tenant.post(
        "/v1/webhook-endpoints", {"url": "http://127.0.0.1:9/", "enabled_events": ["transfer.*x"]}
    )
    assert bad_filter.status_code == 422
    assert bad_filter.json()["errors"][0]["field"] == "enabled_events"
    bad_url = tenant.post("/v1/webhook-endpoints", {"url": "ftp://127.0.0.1/"})
    assert bad_url.status_code == 422
    assert bad_url.json()["code"] == "invalid_webhook_url"
    assert bad_url.json()["errors"][0]["field"] == "url"

    operator_key = httpx.post(
        f"{stack.base}/admin/v1/tenants/{tenant.id}/api-keys",
        headers={"Authorization": f"Bearer {admin_token}"},
        json={"role": "operator"},
        timeout=30,
    ).json()["secret"]
    operator = httpx.post(
        f"{stack.base}/v1/webhook-endpoints",
        headers={"Authorization": f"Bearer {operator_key}"},
        json={"url": "http://127.0.0.1:9/"},
        timeout=30,
    )
    assert operator.status_code == 403

    stranger = Tenant(stack)
    assert stranger.get(f"/v1/webhook-endpoints/{created['id']}").status_code == 404
    deleted = httpx.delete(
        f"{stack.base}/v1/webhook-endpoints/{created['id']}", headers=tenant.headers, timeout=30
    )
    assert deleted.status_code == 200
    assert deleted.json()["status"] == "deleted"
    assert tenant.get(f"/v1/webhook-endpoints/{created['id']}").status_code == 404


def test_an_endpoint_sets_its_in_flight_bound_and_changes_with_patch(stack: Stack) -> None:
    tenant = Tenant(stack)
    plain = tenant.endpoint("http://127.0.0.1:9/plain")
    assert plain["in_flight_max"] == 8
    wide = tenant.post(
        "/v1/webhook-endpoints", {"url": "http://127.0.0.1:9/wide", "in_flight_max": 40}
    )
    assert wide.status_code == 201, wide.text
    assert wide.json()["in_flight_max"] == 40
    too_wide = tenant.post(
        "/v1/webhook-endpoints", {"url": "http://127.0.0.1:9/x", "in_flight_max": 65}
    )
    assert too_wide.status_code == 422
    assert too_wide.json()["errors"][0]["field"] == "in_flight_max"

    path = f"/v1/webhook-endpoints/{plain['id']}"
    changed = tenant.patch(
        path,
        {"in_flight_max": 16, "description": "ERP", "enabled_events": ["transfer.*"] * 2},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["secret"] is None
    read = tenant.get(path).json()
    assert (read["in_flight_max"], read["description"], read["enabled_events"]) == (
        16,
        "ERP",
        ["transfer.*"],
    )
    assert read["url"] == "http://127.0.0.1:9/plain"  # Left out, so left alone.
    assert tenant.patch(path, {"description": None}).json()["description"] is None

    # Each refusal names its field and changes nothing.
    refusals: list[tuple[dict[str, Any], str]] = [
        ({"in_flight_max": 0}, "in_flight_max"),
        ({"enabled_events": ["transfer.*x"]}, "enabled_events"),
        ({"url": "ftp://127.0.0.1/"}, "url"),
        ({"secret": "whsec_x"}, "secret"),
    ]
    for body, field in refusals:
        refused = tenant.patch(path, body)
        assert refused.status_code == 422, (body, refused.text)
        assert refused.json()["errors"][0]["field"] == field, refused.json()
    assert tenant.patch(path, {}).status_code == 422
    assert tenant.get(path).json() == read | {"description": None}

    stranger = Tenant(stack)
    assert stranger.patch(path, {"in_flight_max": 1}).status_code == 404
    httpx.delete(f"{stack.base}{path}", headers=tenant.headers, timeout=30)
    assert tenant.patch(path, {"in_flight_max": 1}).status_code == 404


def test_a_deposit_event_arrives_signed_and_shows_delivered(stack: Stack) -> None:
    tenant = Tenant(stack)
    with Receiver() as receiver:
        endpoint = tenant.endpoint(receiver.url, ["deposit.*"])
        tenant.deposit(12_345)
        (request,) = receiver.wait_for(1, timeout_seconds=wait_seconds_max)

    payload = Webhook(endpoint["secret"]).verify(request.body, request.headers)
    event = tenant.only_event("deposit.posted")
    assert payload["id"] == event["id"]
    assert payload["type"] == "deposit.posted"
    assert payload["data"] == event["data"]
    eventually(lambda: delivery_status(tenant, event["id"]) == [("delivered", 1)])


def test_the_event_log_pages_with_its_cursor(stack: Stack) -> None:
    tenant = Tenant(stack)
    for amount in (101, 102, 103):
        tenant.deposit(amount)
    first = tenant.get("/v1/events?type=deposit.posted&limit=2").json()
    second = tenant.get(
        f"/v1/events?type=deposit.posted&limit=2&cursor={first['next_cursor']}"
    ).json()
    amounts = [e["data"]["amount"] for e in first["data"] + second["data"]]
    assert amounts == [101, 102, 103]
    assert second["next_cursor"] is None
    assert tenant.get("/v1/events?cursor=nonsense").status_code == 422


def test_a_500_is_retried_and_delivered(stack: Stack) -> None:
    tenant = Tenant(stack)
    with Receiver(answers=[500]) as receiver:
        endpoint = tenant.endpoint(receiver.url)
        tenant.deposit()
        first, second = receiver.wait_for(2, timeout_seconds=wait_seconds_max)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    Webhook(endpoint["secret"]).verify(second.body, second.headers)
    event = tenant.only_event("deposit.posted")
    eventually(lambda: delivery_status(tenant, event["id"]) == [("delivered", 2)])
    metrics = httpx.get(
        f"http://127.0.0.1:{stack.environment['KOVRA_WORKER_METRICS_PORT']}/metrics", timeout=30
    ).text
    assert 'kovra_webhook_attempts_total{outcome="http_error"}' in metrics
    assert 'kovra_webhook_attempts_total{outcome="delivered"}' in metrics
    assert "kovra_webhook_queue_depth" in metrics


def test_dead_letters_are_delivered_after_a_redelivery(stack: Stack) -> None:
    tenant = Tenant(stack)
    with Receiver(default_status=500) as receiver:
        endpoint = tenant.endpoint(receiver.url)
        tenant.deposit()
        event = tenant.only_event("deposit.posted")
        eventually(lambda: delivery_status(tenant, event["id"]) == [("dead", 3)])
        assert len(receiver.snapshot()) == 3

        receiver.default_status = 200
        redelivered = tenant.post(f"/v1/events/{event['id']}/redeliver")
        assert redelivered.status_code == 202, redelivered.text
        assert [d["status"] for d in redelivered.json()["data"]] == ["pending"]
        received = receiver.wait_for(4, timeout_seconds=wait_seconds_max)

    Webhook(endpoint["secret"]).verify(received[-1].body, received[-1].headers)
    assert len({r.headers["webhook-id"] for r in received}) == 1
    eventually(lambda: delivery_status(tenant, event["id"]) == [("delivered", 1)])


def test_both_secrets_verify_during_a_rotation(stack: Stack) -> None:
    tenant = Tenant(stack)
    with Receiver() as receiver:
        endpoint = tenant.endpoint(receiver.url)
        rotated = tenant.post(
            f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", {"overlap_seconds": 3600}
        )
        assert rotated.status_code == 200, rotated.text
        new_secret = rotated.json()["secret"]
        assert new_secret != endpoint["secret"]
        assert rotated.json()["previous_secret_expires_at"] is not None
        tenant.deposit()
        (overlapping,) = receiver.wait_for(1, timeout_seconds=wait_seconds_max)

        retired = tenant.post(
            f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", {"overlap_seconds": 0}
        )
        newest = retired.json()["secret"]
        tenant.deposit()
        _, alone = receiver.wait_for(2, timeout_seconds=wait_seconds_max)

    assert len(overlapping.headers["webhook-signature"].split(" ")) == 2
    for secret in (endpoint["secret"], new_secret):
        Webhook(secret).verify(overlapping.body, overlapping.headers)
    Webhook(newest).verify(alone.body, alone.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret).verify(alone.body, alone.headers)


def test_a_worker_killed_mid_delivery_delivers_after_restart(stack: Stack) -> None:
    tenant = Tenant(stack)
    with Receiver(answers=[hang]) as receiver:
        endpoint = tenant.endpoint(receiver.url)
        tenant.deposit()
        assert receiver.hanging.wait(wait_seconds_max)
        stack.kill(stack.worker)  # SIGKILL mid-request: no outcome is ever written.
        receiver.release()
        stack.start_worker()
        first, second = receiver.wait_for(2, timeout_seconds=wait_seconds_max)

    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    Webhook(endpoint["secret"]).verify(second.body, second.headers)
    event = tenant.only_event("deposit.posted")
    eventually(lambda: delivery_status(tenant, event["id"]) == [("delivered", 2)])
