"""Partners through the API (the whole ASGI app in this process, real Postgres and Redis): a
sandbox partner and an http partner are created and read back as given, each with its own
ledger number; the http partner's `whsec_` secret is in the creation's answer only (never in
a read or a list) and a dump of the table does not show it, though it opens from its sealed
form and signs; each creation is audited without the secret; an Idempotency-Key replays the
first answer and creates one partner; each bad field is a 422 naming it (a URL for the
sandbox adapter, none for http, a URL the address policy refuses, an unknown kind or
currency) and stores nothing; another tenant's partner is 404 and absent from its list;
lists page."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from gateway.http.ids import decode_id
from gateway.webhooks.signing import secret_key
from tests import redis_server
from tests.gateway.api_matrix import Api, Tenant, api_for_a_module

redis_url = redis_server.redis_url(14)  # This module's own database, emptied around it.
on_the_modules_loop = pytest.mark.asyncio(loop_scope="module")
pytestmark = on_the_modules_loop

savings = {
    "kind": "savings",
    "name": "Nordbank Savings",
    "currency": "EUR",
    "adapter": "sandbox",
    "reference": "NORDBANK-0042",
}
rent = {
    "kind": "rent",
    "name": "Hausverwaltung Süd",
    "currency": "EUR",
    "adapter": "http",
    "reference": "MIETE-7781",
    "url": "http://127.0.0.1:9/orders",  # The sandbox allows a local receiver.
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    async with api_for_a_module(tmp_path_factory.mktemp("partners"), redis_url=redis_url) as made:
        yield made


async def _post(api: Api, tenant: Tenant, body: Any, **headers: str) -> Any:
    return await api.client.post(
        "/v1/partners", json=body, headers={**tenant.headers("admin"), **headers}
    )


async def _get(api: Api, tenant: Tenant, path: str, **params: str) -> Any:
    return await api.client.get(path, params=params, headers=tenant.headers("read_only"))


async def _count(api: Api, tenant: Tenant) -> int:
    count: int = await api.pool.fetchval(
        "SELECT count(*) FROM partners WHERE tenant_id = $1", tenant.tenant_id
    )
    return count


async def test_a_sandbox_and_an_http_partner_are_created_and_read_back(api: Api) -> None:
    tenant = await api.tenant("partners-read")
    made = []
    for body in (savings, rent):
        created = await _post(api, tenant, body)
        assert created.status_code == 201, created.text
        partner = created.json()
        assert partner["id"].startswith("ptn_")
        assert {k: partner[k] for k in body} == body
        assert (partner["object"], partner["status"]) == ("partner", "active")
        read = await _get(api, tenant, f"/v1/partners/{partner['id']}")
        assert read.status_code == 200, read.text
        assert read.json() == {**partner, "secret": None}
        made.append(partner)
    assert made[0]["url"] is None
    assert made[0]["secret"] is None
    numbers = await api.pool.fetch(
        "SELECT ledger_number FROM partners WHERE tenant_id = $1", tenant.tenant_id
    )
    assert len({row["ledger_number"] for row in numbers}) == 2
    assert all(1 <= row["ledger_number"] < 2**32 for row in numbers)


async def test_the_secret_is_shown_once_and_sealed_at_rest(api: Api) -> None:
    tenant = await api.tenant("partners-secret")
    partner = (await _post(api, tenant, rent)).json()
    secret = partner["secret"]
    assert secret.startswith("whsec_")
    assert len(secret_key(secret)) >= 24
    assert (await _get(api, tenant, f"/v1/partners/{partner['id']}")).json()["secret"] is None
    listed = (await _get(api, tenant, "/v1/partners")).json()["data"]
    assert [p["secret"] for p in listed] == [None]
    dump = "\n".join(
        row["line"] for row in await api.pool.fetch("SELECT p::text AS line FROM partners p")
    )
    assert "sealed:v1:" in dump
    for shown in (secret, secret.removeprefix("whsec_"), secret_key(secret).hex()):
        assert shown not in dump
    partner_id = uuid.UUID(int=decode_id("ptn", partner["id"]))
    sealed = await api.pool.fetchval("SELECT secret_sealed FROM partners WHERE id = $1", partner_id)
    assert api.app.state.runtime.secret_box.open(sealed, bound_to=partner_id.bytes) == secret


async def test_each_creation_is_audited_without_the_secret(api: Api) -> None:
    tenant = await api.tenant("partners-audit")
    partner = (await _post(api, tenant, rent)).json()
    target = f"partner:{uuid.UUID(int=decode_id('ptn', partner['id']))}"
    rows = await api.pool.fetch(
        """SELECT actor, action, details::text AS details FROM audit_outbox WHERE target = $1
           UNION ALL
           SELECT actor, action, details::text FROM audit_records WHERE target = $1""",
        target,
    )
    assert [(row["action"]) for row in rows] == ["partner.create"]
    assert rows[0]["actor"].startswith(f"tenant:{tenant.tenant_id}:key:")
    details = json.loads(rows[0]["details"])
    assert {k: details[k] for k in ("kind", "name", "currency", "adapter", "reference", "url")} == {
        k: rent[k] for k in ("kind", "name", "currency", "adapter", "reference", "url")
    }
    assert partner["secret"] not in rows[0]["details"]


async def test_an_idempotency_key_replays_the_first_answer_and_creates_one_partner(
    api: Api,
) -> None:
    tenant = await api.tenant("partners-idempotent")
    first = await _post(api, tenant, rent, **{"Idempotency-Key": "ptn-1"})
    again = await _post(api, tenant, rent, **{"Idempotency-Key": "ptn-1"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await _count(api, tenant) == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"adapter": "sandbox"}, "url"),  # A sandbox partner has no url.
        ({"url": None}, "url"),  # An http partner needs one.
        ({"url": "ftp://partner.example/orders"}, "url"),
        ({"url": "https://user:pw@partner.example/orders"}, "url"),
        ({"url": "https://partner.example/orders#part"}, "url"),
        ({"kind": "lottery"}, "kind"),
        ({"adapter": "carrier_pigeon"}, "adapter"),
        ({"currency": "NOK"}, "currency"),
        ({"currency": "eur"}, "currency"),
        ({"name": ""}, "name"),
        ({"reference": "x" * 129}, "reference"),
        ({"colour": "blue"}, "colour"),
    ],
)
async def test_each_bad_field_is_a_422_naming_it_and_stores_nothing(
    api: Api, change: dict[str, Any], field: str
) -> None:
    tenant = await api.tenant(f"partners-bad-{field}")
    body = {k: v for k, v in {**rent, **change}.items() if v is not None}
    refused = await _post(api, tenant, body)
    assert refused.status_code == 422, refused.text
    assert [e["field"] for e in refused.json()["errors"]] == [field], refused.text
    assert await _count(api, tenant) == 0


async def test_another_tenants_partner_is_not_found_and_not_listed(api: Api) -> None:
    owner = await api.tenant("partners-owner")
    stranger = await api.tenant("partners-stranger")
    partner = (await _post(api, owner, savings)).json()
    read = await _get(api, stranger, f"/v1/partners/{partner['id']}")
    assert read.status_code == 404, read.text
    assert read.json()["code"] == "not_found"
    assert (await _get(api, stranger, "/v1/partners")).json()["data"] == []
    unknown = await _get(api, owner, "/v1/partners/ptn_" + "0" * 26)
    assert unknown.status_code == 404


async def test_lists_page_oldest_first(api: Api) -> None:
    tenant = await api.tenant("partners-pages")
    made = [
        (await _post(api, tenant, {**savings, "name": f"Bank {n}"})).json()["id"] for n in range(3)
    ]
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await _get(api, tenant, "/v1/partners", **params)).json()
        seen += [p["id"] for p in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made
