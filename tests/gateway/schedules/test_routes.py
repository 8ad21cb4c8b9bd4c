"""Schedules through the API (the whole app in this process, real Postgres and Redis): a
cron schedule is created under the customer's active mandate, listed, and deleted (audited;
deleting again answers the deleted schedule); a bad cron expression, an unknown time zone, a
field of the other kind and a malformed mandate id are each a 422 naming the field and store
nothing; another tenant's customer or schedule is a 404."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from gateway.http.ids import decode_id
from tests import redis_server
from tests.gateway.api_matrix import Api, Tenant, api_for_a_module

redis_url = redis_server.redis_url(3)
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    async with api_for_a_module(tmp_path_factory.mktemp("schedules"), redis_url=redis_url) as made:
        yield made


async def active_mandate(api: Api, tenant: Tenant) -> tuple[str, str]:
    """A customer of the tenant and their mandate, made active as its provider's
    notification would."""
    from tests.gateway.api_matrix import _mandate_body  # noqa: PLC0415

    body = await _mandate_body(api, tenant)
    mandate = await api.created(tenant, "/v1/mandates", body)
    await api.pool.execute(
        "UPDATE mandates SET status = 'active' WHERE id = $1",
        uuid.UUID(int=decode_id("mdt", mandate["id"])),
    )
    return str(body["customer_id"]), str(mandate["id"])


def schedule_body(mandate: str, **changes: Any) -> dict[str, Any]:
    return {
        "kind": "cron",
        "mandate_id": mandate,
        "amount": 5_000,
        "cron": "0 9 1 * *",
        "timezone": "Europe/Berlin",
        **changes,
    }


async def _post(api: Api, tenant: Tenant, customer_id: str, body: Any) -> Any:
    return await api.client.post(
        f"/v1/customers/{customer_id}/schedules", json=body, headers=tenant.headers("operator")
    )


async def test_a_schedule_is_created_listed_and_deleted(api: Api) -> None:
    tenant = await api.tenant("schedules")
    customer_id, mandate_id = await active_mandate(api, tenant)
    created = await _post(api, tenant, customer_id, schedule_body(mandate_id))
    assert created.status_code == 201, created.text
    schedule = created.json()
    assert schedule["id"].startswith("sch_")
    assert (schedule["status"], schedule["currency"], schedule["cron"]) == (
        "active",
        "EUR",
        "0 9 1 * *",
    )
    path = f"/v1/customers/{customer_id}/schedules"
    listed = await api.client.get(path, headers=tenant.headers("read_only"))
    assert [s["id"] for s in listed.json()["data"]] == [schedule["id"]]
    deleted = await api.client.delete(
        f"{path}/{schedule['id']}", headers=tenant.headers("operator")
    )
    assert deleted.status_code == 200, deleted.text
    assert (deleted.json()["status"], deleted.json()["next_run_at"]) == ("deleted", None)
    again = await api.client.delete(f"{path}/{schedule['id']}", headers=tenant.headers("operator"))
    assert again.json() == deleted.json()
    assert (await api.client.get(path, headers=tenant.headers("read_only"))).json()["data"] == []
    audited = await api.pool.fetch(
        "SELECT action FROM audit_outbox WHERE target = $1 "
        "UNION ALL SELECT action FROM audit_records WHERE target = $1",
        f"schedule:{uuid.UUID(int=decode_id('sch', schedule['id']))}",
    )
    assert sorted(r["action"] for r in audited) == ["schedule.create", "schedule.delete"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"cron": "0 9 * *"}, "cron"),
        ({"cron": "0 25 * * *"}, "cron"),
        ({"cron": "0 9 30 2 *"}, "cron"),
        ({"timezone": "Europe/Atlantis"}, "timezone"),
        ({"timezone": "Etc/../../passwd"}, "timezone"),
        ({"threshold": 100}, "threshold"),
        ({"amount": None}, "amount"),
        ({"amount": 0}, "amount"),
        ({"mandate_id": "mdt_nope"}, "mandate_id"),
    ],
)
async def test_each_bad_field_is_a_422_naming_it(
    api: Api, changes: dict[str, Any], field: str
) -> None:
    tenant = await api.tenant(f"schedules-bad-{field}")
    customer_id, mandate_id = await active_mandate(api, tenant)
    body = {k: v for k, v in schedule_body(mandate_id, **changes).items() if v is not None}
    refused = await _post(api, tenant, customer_id, body)
    assert refused.status_code == 422, refused.text
    assert [e["field"] for e in refused.json()["errors"]] == [field]
    count = await api.pool.fetchval(
        "SELECT count(*) FROM schedules WHERE tenant_id = $1", tenant.tenant_id
    )
    assert count == 0


async def test_another_tenants_customer_and_schedule_are_not_found(api: Api) -> None:
    owner = await api.tenant("schedules-owner")
    stranger = await api.tenant("schedules-stranger")
    customer_id, mandate_id = await active_mandate(api, owner)
    schedule = (await _post(api, owner, customer_id, schedule_body(mandate_id))).json()
    assert (await _post(api, stranger, customer_id, schedule_body(mandate_id))).status_code == 404
    path = f"/v1/customers/{customer_id}/schedules"
    listed = await api.client.get(path, headers=stranger.headers("read_only"))
    assert listed.status_code == 404
    deleted = await api.client.delete(
        f"{path}/{schedule['id']}", headers=stranger.headers("operator")
    )
    assert deleted.status_code == 404
