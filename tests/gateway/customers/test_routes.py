"""Customers through the API (the whole ASGI app in this process, real Postgres and Redis):
a customer is created and read back as it was given; an Idempotency-Key replays the first
answer; a second customer with a tenant's external id is `409 external_id_taken` and
stores nothing; another tenant's customer is `404`, and its lists never show it; lists page
and find a customer by external id and by email (case ignored); each bad field is a 422
naming it and stores nothing; the `customer.created` event is written with the customer
and carries no personal data; and a dump of the table shows no name, email or external id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from gateway.http.ids import decode_id
from tests import redis_server
from tests.gateway.api_matrix import Api, Tenant, api_for_a_module

redis_url = redis_server.redis_url(1)  # This module's own database, emptied around it.
on_the_modules_loop = pytest.mark.asyncio(loop_scope="module")
pytestmark = on_the_modules_loop


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    async with api_for_a_module(tmp_path_factory.mktemp("customers"), redis_url=redis_url) as made:
        yield made


async def _post(api: Api, tenant: Tenant, body: Any, **headers: str) -> Any:
    return await api.client.post(
        "/v1/customers", json=body, headers={**tenant.headers("admin"), **headers}
    )


async def _get(api: Api, tenant: Tenant, path: str, **params: str) -> Any:
    return await api.client.get(path, params=params, headers=tenant.headers("read_only"))


async def _count(api: Api, tenant: Tenant) -> int:
    count: int = await api.pool.fetchval(
        "SELECT count(*) FROM customers WHERE tenant_id = $1", tenant.tenant_id
    )
    return count


ada = {
    "name": "Adaeze Okafor",
    "email": "Adaeze.Okafor@Example.com",
    "country": "NG",
    "external_id": "user-8812",
}


async def test_a_customer_is_created_and_read_back(api: Api) -> None:
    tenant = await api.tenant("customers-read")
    created = await _post(api, tenant, ada)
    assert created.status_code == 201, created.text
    customer = created.json()
    assert customer["id"].startswith("cus_")
    assert {k: customer[k] for k in ada} == ada
    assert customer["object"] == "customer"
    read = await _get(api, tenant, f"/v1/customers/{customer['id']}")
    assert read.status_code == 200
    assert read.json() == customer
    minimal = await _post(api, tenant, {"name": "Bo", "country": "GB"})
    assert minimal.status_code == 201, minimal.text
    assert (minimal.json()["email"], minimal.json()["external_id"]) == (None, None)


async def test_an_idempotency_key_replays_the_first_answer(api: Api) -> None:
    tenant = await api.tenant("customers-idempotent")
    first = await _post(api, tenant, ada, **{"Idempotency-Key": "cus-1"})
    again = await _post(api, tenant, ada, **{"Idempotency-Key": "cus-1"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    other = await _post(
        api, tenant, {**ada, "name": "Someone Else"}, **{"Idempotency-Key": "cus-1"}
    )
    assert other.status_code == 409
    assert other.json()["code"] == "idempotency_conflict"
    assert await _count(api, tenant) == 1


async def test_a_second_customer_with_an_external_id_is_a_conflict(api: Api) -> None:
    tenant = await api.tenant("customers-external-id")
    assert (await _post(api, tenant, ada)).status_code == 201
    again = await _post(api, tenant, {**ada, "name": "Another Person", "email": None})
    assert again.status_code == 409, again.text
    problem = again.json()
    assert problem["code"] == "external_id_taken"
    assert problem["errors"] == [{"field": "external_id", "message": problem["detail"]}]
    assert await _count(api, tenant) == 1
    # External ids are the tenant's own: another tenant may use the same one.
    other = await api.tenant("customers-external-id-other")
    assert (await _post(api, other, ada)).status_code == 201


async def test_another_tenants_customer_is_not_found(api: Api) -> None:
    owner = await api.tenant("customers-owner")
    intruder = await api.tenant("customers-intruder")
    customer = (await _post(api, owner, ada)).json()
    read = await _get(api, intruder, f"/v1/customers/{customer['id']}")
    assert read.status_code == 404
    assert read.json()["code"] == "not_found"
    for params in ({}, {"external_id": ada["external_id"]}, {"email": ada["email"]}):
        listed = await _get(api, intruder, "/v1/customers", **params)
        assert listed.status_code == 200
        assert listed.json()["data"] == []
    unknown = await _get(api, owner, "/v1/customers/cus_01JD3XK5Q8N2P7R4S6T9V0W1Y2")
    assert unknown.status_code == 404


async def test_lists_page_and_find_by_external_id_and_email(api: Api) -> None:
    tenant = await api.tenant("customers-lists")
    made = []
    for number in range(5):
        body = {
            "name": f"Customer {number}",
            "email": "shared@example.com" if number % 2 else f"c{number}@example.com",
            "country": "DE",
            "external_id": f"ext-{number}",
        }
        made.append((await _post(api, tenant, body)).json()["id"])
    pages: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await _get(api, tenant, "/v1/customers", **params)).json()
        pages += [customer["id"] for customer in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == made
    by_external_id = (await _get(api, tenant, "/v1/customers", external_id="ext-3")).json()
    assert [c["id"] for c in by_external_id["data"]] == [made[3]]
    assert (await _get(api, tenant, "/v1/customers", external_id="EXT-3")).json()["data"] == []
    by_email = (await _get(api, tenant, "/v1/customers", email=" Shared@EXAMPLE.com ")).json()
    assert [c["id"] for c in by_email["data"]] == [made[1], made[3]]
    both = await _get(api, tenant, "/v1/customers", email="shared@example.com", external_id="ext-1")
    assert [c["id"] for c in both.json()["data"]] == [made[1]]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "tab\there"}, "name"),
        ({"email": "not-an-email"}, "email"),
        ({"email": "someone@localhost"}, "email"),
        ({"country": "ng"}, "country"),
        ({"country": "XX"}, "country"),
        ({"external_id": ""}, "external_id"),
        ({"external_id": "e" * 129}, "external_id"),
        ({"nickname": "Ada"}, "nickname"),
    ],
)
async def test_a_bad_field_is_a_422_naming_it_and_stores_nothing(
    api: Api, change: dict[str, str], field: str
) -> None:
    tenant = await api.tenant(f"customers-bad-{field}")
    refused = await _post(api, tenant, {**ada, **change})
    assert refused.status_code == 422, refused.text
    assert [error["field"] for error in refused.json()["errors"]] == [field]
    assert await _count(api, tenant) == 0


async def test_a_missing_name_is_a_422_naming_it(api: Api) -> None:
    tenant = await api.tenant("customers-missing")
    refused = await _post(api, tenant, {"country": "NG"})
    assert refused.status_code == 422
    assert [error["field"] for error in refused.json()["errors"]] == ["name"]


async def test_bad_list_parameters_are_422s_naming_them(api: Api) -> None:
    tenant = await api.tenant("customers-bad-list")
    for params, field in (
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"cursor": "nope"}, "cursor"),
        ({"external_id": ""}, "external_id"),
        ({"email": "e" * 255}, "email"),
    ):
        refused = await _get(api, tenant, "/v1/customers", **params)
        assert refused.status_code == 422, (params, refused.text)
        assert [error["field"] for error in refused.json()["errors"]] == [field]


async def test_the_created_event_is_written_with_the_customer_without_personal_data(
    api: Api,
) -> None:
    tenant = await api.tenant("customers-event")
    customer = (await _post(api, tenant, ada)).json()
    events = (await _get(api, tenant, "/v1/events", type="customer.created")).json()["data"]
    assert [event["data"] for event in events] == [
        {
            "id": customer["id"],
            "object": "customer",
            "country": "NG",
            "created_at": events[0]["data"]["created_at"],
        }
    ]
    for value in (ada["name"], ada["email"], ada["external_id"]):
        assert value.lower() not in str(events).lower()


async def test_a_dump_of_the_table_shows_no_personal_data(api: Api) -> None:
    tenant = await api.tenant("customers-dump")
    people = [
        {
            "name": "Chiamaka Eze",
            "email": "chiamaka@example.org",
            "country": "NG",
            "external_id": "NG-77",
        },
        {
            "name": "Ingrid Larsen",
            "email": "ingrid@example.dk",
            "country": "DK",
            "external_id": "DK-19",
        },
    ]
    for person in people:
        assert (await _post(api, tenant, person)).status_code == 201
    dump = "\n".join(
        row["line"] for row in await api.pool.fetch("SELECT c::text AS line FROM customers c")
    )
    assert dump.count("sealed:v1:") >= 6
    for person in people:
        for field in ("name", "email", "external_id"):
            assert person[field].lower() not in dump.lower()
            # Nor the text as Postgres writes bytes.
            assert person[field].encode().hex() not in dump
    ids = [
        decode_id("cus", c["id"]) for c in (await _get(api, tenant, "/v1/customers")).json()["data"]
    ]
    assert len(ids) == 2
