"""The role of a tenant key decides what it may call, as one table says, for every route.

- The table (`gateway.http.roles`) names exactly the app's tenant routes, and
  docs/roles.md is what it generates. It keeps the rules no edit of it may break: every
  key reads; a `read_only` key changes nothing; a `compliance` key only decides cases and
  only it does; only `admin` keys manage webhook endpoints; an `admin` key may do all an
  `operator` key may.
- The matrix: every method of every `/v1` route in the app's own route list, called with a
  key of every role (`admin`, `operator`, `read_only`, `compliance`) through the whole ASGI
  app in this process (the middleware, the hot routes, Litestar) over real Postgres, Redis
  and the embedded ledger. Where the table allows the role, the request, a valid one on a
  fresh object, is served with its success status; where it does not, the answer is
  `403 forbidden` and nothing changed: no row of any table, no balance, nor the object the
  request named. A route the table or the matrix's requests do not name fails its case.
- A route the table does not name is refused to every role.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from gateway.http.problems import ProblemError
from gateway.http.roles import allowed_roles, ensure_role_may_call, reference, route_roles
from gateway.tenancy.records import roles
from tests import redis_server
from tests.gateway.api_matrix import (
    Api,
    api_for_a_module,
    path_parameters,
    request_for,
    tenant_routes,
)

# The async tests share the module's app, so they run on the module's event loop.
on_the_modules_loop = pytest.mark.asyncio(loop_scope="module")
redis_url = redis_server.redis_url(4)  # This module's own database, emptied around it.
repository = Path(__file__).resolve().parents[3]
routes = tenant_routes()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    async with api_for_a_module(tmp_path_factory.mktemp("roles"), redis_url=redis_url) as api:
        yield api


def test_the_roles_reference_is_generated_from_the_table() -> None:
    """Regenerate with `python -m gateway.http.roles --reference > docs/roles.md`."""
    written = (repository / "docs" / "roles.md").read_text()
    assert written == reference(), "docs/roles.md is stale: regenerate it"


def test_the_table_names_exactly_the_apps_tenant_routes() -> None:
    served = {(method, route) for method, route in routes if method != "OPTIONS"}
    assert served - set(route_roles) == set(), "routes without roles in gateway/http/roles.py"
    assert set(route_roles) - served == set(), "roles for routes the app does not have"
    assert all(allowed <= set(roles) for allowed in route_roles.values())


def _changing() -> dict[tuple[str, str], frozenset[str]]:
    """The table's routes that change something: every method but GET."""
    return {entry: allowed for entry, allowed in route_roles.items() if entry[0] != "GET"}


def test_every_key_reads_everything_of_its_tenant() -> None:
    reads = [allowed for (method, _), allowed in route_roles.items() if method == "GET"]
    assert reads
    assert all(allowed == set(roles) for allowed in reads)


def test_a_read_only_key_changes_nothing() -> None:
    assert [entry for entry, allowed in _changing().items() if "read_only" in allowed] == []


def test_a_compliance_key_only_decides_cases() -> None:
    """It is the platform's compliance officers' key: it never moves the tenant's money."""
    decided = [entry for entry, allowed in _changing().items() if "compliance" in allowed]
    assert decided == [("POST", "/v1/compliance/cases/{case_id}/decision")]


def test_only_a_compliance_key_decides_cases() -> None:
    """Separation of duties: a tenant never clears its own payouts."""
    assert route_roles[("POST", "/v1/compliance/cases/{case_id}/decision")] == {"compliance"}


def test_only_admin_keys_manage_webhook_endpoints() -> None:
    managing = {
        entry: allowed
        for entry, allowed in _changing().items()
        if entry[1].startswith("/v1/webhook-endpoints")
    }
    assert len(managing) == 4
    assert set(managing.values()) == {frozenset({"admin"})}


def test_an_admin_key_may_do_all_an_operator_key_may() -> None:
    assert all("admin" in allowed for allowed in route_roles.values() if "operator" in allowed)


def test_a_route_the_table_does_not_name_is_refused_to_every_role() -> None:
    for role in roles:
        with pytest.raises(ProblemError) as refused:
            ensure_role_may_call(role, method="POST", route="/v1/not-in-the-table")
        assert (refused.value.status, refused.value.code) == (403, "forbidden")


@on_the_modules_loop
@pytest.mark.parametrize("role", roles)
@pytest.mark.parametrize(("method", "route"), routes, ids=[" ".join(route) for route in routes])
async def test_each_role_is_served_or_refused_as_the_table_says(
    api: Api, method: str, route: str, role: str
) -> None:
    tenant = await api.tenant(f"roles {role}")  # Its own, so no case sees another's objects.
    assert method == "OPTIONS" or (method, route) in route_roles, (
        f"{method} {route} has no roles in gateway/http/roles.py"
    )
    request = request_for(method, route)
    ids = {parameter: await api.make(parameter, tenant) for parameter in path_parameters(route)}
    body = None if request.body is None else await request.body(api, tenant)
    before = await api.snapshot(tenant, ids)
    response = await api.call(method, route, ids=ids, key=tenant.keys[role], body=body)
    if role in allowed_roles(method, route):
        assert response.status_code == request.served, response.text
        return
    _forbidden(response)
    assert await api.snapshot(tenant, ids) == before


@on_the_modules_loop
@pytest.mark.parametrize("role", roles)
async def test_a_path_no_route_serves_is_not_found_whatever_the_role(api: Api, role: str) -> None:
    """The role is checked against the route the request reaches; none reached, none to
    check, and the answer is Litestar's own."""
    tenant = await api.tenant(f"no route {role}")
    response = await api.client.post("/v1/no-such-route", json={}, headers=tenant.headers(role))
    assert response.status_code == 404, response.text


def _forbidden(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    problem: dict[str, Any] = response.json()
    assert problem["code"] == "forbidden", problem
