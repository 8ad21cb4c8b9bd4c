"""Tenants never see, change or use each other's objects.

Through the whole ASGI app in this process over real Postgres, Redis and the embedded ledger,
an owner tenant holds one live object of every kind a route names by id (a pending hold, an
unused quote, a recipient, a processing transfer, a batch, a compliance case open on a
transfer in review, a webhook endpoint, an event), and an intruder tenant, with keys of
every role, tries them:

- the matrix: every route in the app's route list with an id in its path (OPTIONS aside,
  which Litestar answers without looking anything up), called by the intruder with the
  owner's ids, a key whose role the route allows and an otherwise valid request, is
  `404 not_found`, never `403`, and nothing of the owner's changed: no row of any table, not
  its balances in the ledger, nor any of its objects as it reads them (quotes live in
  Redis). A path id the object factory cannot make fails its case;
- lists: no list route shows the intruder an id of the owner's, while the owner's own
  answers show them;
- ids in bodies: the intruder cannot pay the owner's recipient, pay from the owner's quote,
  put the owner's recipient in a batch, or redeliver an event to the owner's endpoint, and
  is answered as for an id that names nothing, so the answer tells it nothing;
- a compliance key decides its own tenant's cases, never another's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio

from gateway.http.ids import encode_id
from gateway.http.roles import allowed_roles
from gateway.tenancy.records import roles
from tests import redis_server
from tests.gateway.api_matrix import (
    Api,
    Snapshot,
    Tenant,
    api_for_a_module,
    makers,
    path_parameters,
    request_for,
    tenant_routes,
)

redis_url = redis_server.redis_url(6)  # This module's own database, emptied around it.
on_the_modules_loop = pytest.mark.asyncio(loop_scope="module")
routes = tenant_routes()
routes_with_ids = [(m, r) for m, r in routes if path_parameters(r) and m != "OPTIONS"]
list_routes = [(m, r) for m, r in routes if m == "GET" and not path_parameters(r)]


@dataclass(frozen=True)
class World:
    api: Api
    owner: Tenant
    owner_ids: dict[str, str]  # One live object of every kind, by path parameter.
    intruder: Tenant

    async def owners_snapshot(self) -> Snapshot:
        return await self.api.snapshot(self.owner, self.owner_ids)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with api_for_a_module(tmp_path_factory.mktemp("isolation"), redis_url=redis_url) as api:
        owner = await api.tenant("owner")
        owner_ids = {parameter: await api.make(parameter, owner) for parameter in makers}
        yield World(api=api, owner=owner, owner_ids=owner_ids, intruder=await api.tenant("b"))


def _not_found(response: httpx.Response) -> None:
    assert response.status_code == 404, response.text
    problem: dict[str, Any] = response.json()
    assert problem["code"] == "not_found", problem


@on_the_modules_loop
@pytest.mark.parametrize(
    ("method", "route"), routes_with_ids, ids=[" ".join(r) for r in routes_with_ids]
)
async def test_another_tenants_object_is_not_found_and_unchanged(
    world: World, method: str, route: str
) -> None:
    missing = [p for p in path_parameters(route) if p not in world.owner_ids]
    assert missing == [], f"tests/gateway/api_matrix.py makes no {missing} for {route}"
    request = request_for(method, route)
    role = next(role for role in roles if role in allowed_roles(method, route))
    api, intruder = world.api, world.intruder
    body = None if request.body is None else await request.body(api, intruder)
    before = await world.owners_snapshot()
    response = await api.call(
        method, route, ids=world.owner_ids, key=intruder.keys[role], body=body
    )
    _not_found(response)
    assert await world.owners_snapshot() == before


def _ids_in(value: Any) -> Iterator[str]:
    """Every id an answer names: the values of `id` and `..._id` fields, at any depth."""
    if isinstance(value, dict):
        for name, inner in value.items():
            if (name == "id" or name.endswith("_id")) and isinstance(inner, str):
                yield inner
            yield from _ids_in(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _ids_in(inner)


# Each list again with a filter, since a filter can take another branch of its query.
filtered_lists = [
    ("/v1/transfers", {"status": "processing"}),
    ("/v1/transfers", {"status": "in_review"}),
    ("/v1/events", {"type": "transfer.processing"}),
    ("/v1/compliance/cases", {"status": "all"}),
]


async def _ids_listed(world: World, tenant: Tenant, route: str, query: Any) -> set[str]:
    response = await world.api.client.get(route, params=query, headers=tenant.headers("admin"))
    assert response.status_code == 200, response.text
    return set(_ids_in(response.json()))


@on_the_modules_loop
async def test_no_list_shows_another_tenants_ids(world: World) -> None:
    lists = [(r, request_for(m, r).query) for m, r in list_routes] + filtered_lists
    owners: set[str] = set()
    for route, query in lists:
        owners |= await _ids_listed(world, world.owner, route, query)
    # The owner's own lists name its objects, so a leak would show below.
    shown = {world.owner_ids[p] for p in ("transfer_id", "case_id", "endpoint_id", "event_id")}
    assert shown <= owners
    leaked = [
        (route, query, ids & owners)
        for route, query in lists
        if (ids := await _ids_listed(world, world.intruder, route, query)) & owners
    ]
    assert leaked == []


async def _intruders_snapshot(world: World, ids: dict[str, str]) -> Snapshot:
    return await world.api.snapshot(world.intruder, ids)


def _never_issued(prefix: str) -> str:
    """An id that names nothing: Kovra's ids are 128 bits, time-ordered or hashed, never 1."""
    return encode_id(prefix, 1)


async def _pay(world: World, *, quote: str, recipient: str) -> httpx.Response:
    body = {"quote_id": quote, "recipient_id": recipient, "reference": "INV-isolation"}
    return await world.api.client.post(
        "/v1/transfers", json=body, headers=world.intruder.headers("admin")
    )


def _refusal(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, str(response.json()["code"])


@on_the_modules_loop
async def test_another_tenants_recipient_cannot_be_paid(world: World) -> None:
    """Refused as a recipient id that names nothing is (`422 unknown_recipient`), so the
    answer tells the intruder nothing; nothing is held, and its quote is still usable."""
    quote = await world.api.make("quote_id", world.intruder)
    owners = await world.owners_snapshot()
    intruders = await _intruders_snapshot(world, {"quote_id": quote})
    response = await _pay(world, quote=quote, recipient=world.owner_ids["recipient_id"])
    assert _refusal(response) == (422, "unknown_recipient"), response.text
    assert await world.owners_snapshot() == owners
    assert await _intruders_snapshot(world, {"quote_id": quote}) == intruders
    nothing = await _pay(world, quote=quote, recipient=_never_issued("rcp"))
    assert _refusal(nothing) == _refusal(response)


@on_the_modules_loop
async def test_another_tenants_quote_cannot_be_paid_from(world: World) -> None:
    """Refused as a quote id that names nothing is (`404 not_found`); the owner's quote
    stays unused."""
    recipient = await world.api.recipient(world.intruder)
    owners, intruders = await world.owners_snapshot(), await _intruders_snapshot(world, {})
    response = await _pay(world, quote=world.owner_ids["quote_id"], recipient=recipient)
    _not_found(response)
    assert await world.owners_snapshot() == owners
    assert await _intruders_snapshot(world, {}) == intruders
    nothing = await _pay(world, quote=_never_issued("quote"), recipient=recipient)
    assert _refusal(nothing) == _refusal(response)


async def _batch(world: World, recipient: str, *, atomic: bool) -> httpx.Response:
    item = {
        "recipient_id": recipient,
        "source_currency": "EUR",
        "target_currency": "EUR",
        "source_amount": 1_000,
        "reference": "INV-isolation",
    }
    return await world.api.client.post(
        "/v1/batches",
        json={"items": [item], "atomic": atomic},
        headers=world.intruder.headers("admin"),
    )


def _item_refusals(response: httpx.Response) -> list[Any]:
    """What a batch's answer says of its one item, its ids left out."""
    body = response.json()
    if response.status_code == 201:
        return [(item["status"], item["error"]["code"]) for item in body["items"]]
    return [(response.status_code, body["code"], [e["field"] for e in body["errors"]])]


@on_the_modules_loop
@pytest.mark.parametrize("atomic", [False, True], ids=["each item alone", "atomic"])
async def test_another_tenants_recipient_cannot_be_paid_in_a_batch(
    world: World, atomic: bool
) -> None:
    """The item is refused as one naming no recipient; the owner's rows, balances and
    objects are untouched (the intruder's batch itself is recorded when not atomic)."""
    owners = await world.api.snapshot(world.owner, world.owner_ids, whole_database=False)
    response = await _batch(world, world.owner_ids["recipient_id"], atomic=atomic)
    expected = (
        [("rejected", "unknown_recipient")]
        if not atomic
        else [(422, "batch_rejected", ["items[0].recipient_id"])]
    )
    assert _item_refusals(response) == expected, response.text
    assert response.json().get("accepted_count", 0) == 0
    assert await world.api.snapshot(world.owner, world.owner_ids, whole_database=False) == owners
    nothing = await _batch(world, _never_issued("rcp"), atomic=atomic)
    assert _item_refusals(nothing) == expected


@on_the_modules_loop
async def test_an_event_cannot_be_redelivered_to_another_tenants_endpoint(world: World) -> None:
    api, intruder = world.api, world.intruder
    event = await api.make("event_id", intruder)
    owners, intruders = (
        await world.owners_snapshot(),
        await _intruders_snapshot(world, {"event_id": event}),
    )
    response = await api.client.post(
        f"/v1/events/{event}/redeliver",
        json={"endpoint_id": world.owner_ids["endpoint_id"]},
        headers=intruder.headers("operator"),
    )
    _not_found(response)
    assert await world.owners_snapshot() == owners
    assert await _intruders_snapshot(world, {"event_id": event}) == intruders


@on_the_modules_loop
async def test_a_compliance_key_decides_its_own_tenants_cases_only(world: World) -> None:
    api, intruder = world.api, world.intruder
    owners_case = world.owner_ids["case_id"]
    decision = {"decision": "approve", "note": "not ours to clear"}
    owners = await world.owners_snapshot()
    response = await api.client.post(
        f"/v1/compliance/cases/{owners_case}/decision",
        json=decision,
        headers=intruder.headers("compliance"),
    )
    _not_found(response)
    assert await world.owners_snapshot() == owners
    case = await api.case(world.owner, owners_case)
    assert case["status"] == "open"
    transfer = await api.client.get(
        f"/v1/transfers/{case['transfer_id']}", headers=world.owner.headers("read_only")
    )
    assert transfer.json()["status"] == "in_review"
    # The same key decides a case of its own tenant: the refusal above is the tenancy's.
    own_case = await api.make("case_id", intruder)
    decided = await api.client.post(
        f"/v1/compliance/cases/{own_case}/decision",
        json=decision,
        headers=intruder.headers("compliance"),
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "approved"
