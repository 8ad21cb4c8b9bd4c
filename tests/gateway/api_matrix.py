"""The tenant API as the role and isolation matrices drive it.

- `tenant_routes`: every method of every `/v1` route, read from the app's own route list, so
  a route added to the app is in the matrices the day it exists;
- `requests`: a request each route serves (its body, its query, the status that shows it
  was served), and `makers`: a fresh object for each path parameter (`hold_id`,
  `transfer_id`, ...), both made through the API. A route missing from either fails the
  matrices (`request_for`, `Api.make`);
- `Api`: the app in this process with tenants holding a key of every role, and `Snapshot`:
  everything of a tenant a request could change (every table's rows, the tenant's balances
  in the ledger, its objects as the API shows them, including what lives in Redis).

Used by tests/gateway/http/test_roles.py, tests/gateway/tenancy/test_isolation.py and
tests/gateway/http/test_auth.py.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from litestar import Litestar

from gateway.app import create_app
from gateway.funding.references import funding_reference
from gateway.http.ids import decode_id, encode_id
from gateway.http.ratelimit import requests_per_minute_max
from gateway.settings import load_settings
from gateway.tenancy.records import roles
from loadtest.bench_gateway import admin_token
from loadtest.provisioning import recipients
from tests.postgres import app_for_a_module
from tests.rails.statements.camt_files import EntrySpec, FileSpec, camt

sanctions_fixture = Path(__file__).parent / "e2e" / "fixtures" / "sanctions.csv"
# What the app under test reads: the e2e deployment's sanctions list, so a payee named like
# a listed party waits for review and opens a case.
environment = {"KOVRA_SANCTIONS_FILES": str(sanctions_fixture)}


@contextlib.asynccontextmanager
async def api_for_a_module(data_dir: Path, *, redis_url: str) -> AsyncIterator[Api]:
    """The app of a test module, in this process on its own database and `redis_url`, with
    the fixture sanctions list, as an `Api`."""
    async with app_for_a_module(data_dir, redis_url=redis_url, environment=environment) as (
        app,
        client,
    ):
        yield Api(app, client)


admin = {"Authorization": f"Bearer {admin_token}"}
deposit_minor = 100_000_000
payment_minor = 1_000
# Scores 88 against "Goldfinch Precious Metals GmbH": a review, not a block.
near_match_name = "Goldfinch Metals"
webhook_url = "http://127.0.0.1:9/kovra-hook"  # Nothing listens; no worker runs here anyway.
path_parameter = re.compile(r"{([a-z_]+)}")


# The one `/v1` route that is not a tenant's: mandate providers call it, signed, keyless.
provider_webhook_route = "/v1/providers/{provider}/webhooks"


def tenant_routes(app: Litestar | None = None) -> list[tuple[str, str]]:
    """(method, path template) of every tenant route of the app, OPTIONS included."""
    routes = (app or create_app(load_settings({}))).routes
    return sorted(
        (method, route.path_format)
        for route in routes
        if route.path_format.startswith("/v1/") and route.path_format != provider_webhook_route
        for method in route.methods
    )


def path_parameters(route: str) -> list[str]:
    return path_parameter.findall(route)


@dataclass(frozen=True)
class Tenant:
    tenant_id: int
    keys: dict[str, str]  # By role.

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


Body = Callable[["Api", Tenant], Awaitable[Any]]


@dataclass(frozen=True)
class Request:
    """A request a route serves: `served` is its status when it does."""

    served: int
    body: Body | None = None
    query: Mapping[str, str] = field(default_factory=dict)


def _static(body: dict[str, Any]) -> Body:
    async def made(_: Api, __: Tenant) -> Any:
        return body

    return made


async def _transfer_body(api: Api, tenant: Tenant) -> Any:
    return {
        "quote_id": await api.make("quote_id", tenant),
        "recipient_id": await api.recipient(tenant),
        "reference": "INV-matrix",
    }


async def _batch_body(api: Api, tenant: Tenant) -> Any:
    item = {
        "recipient_id": await api.recipient(tenant),
        "source_currency": "EUR",
        "target_currency": "EUR",
        "source_amount": payment_minor,
        "reference": "batch item",
    }
    return {"items": [item]}


async def _mandate_body(api: Api, tenant: Tenant) -> Any:
    return {
        "customer_id": await _customer(api, tenant),
        "provider": "sepa_dd",
        "currency": "EUR",
        "bank_details": {"iban": "DE89370400440532013000", "bic": "COBADEFFXXX"},
        "reference": "matrix mandate",
        "consent": {"accepted_at": "2026-01-05T09:30:00Z", "ip": "203.0.113.7", "user_agent": "x"},
    }


async def _schedule_body(api: Api, tenant: Tenant) -> Any:
    """A cron schedule under an active mandate of the customer made last for the tenant
    (the one the route's path names; a new one when there is none)."""
    customer = api.last_customer.get(tenant.tenant_id) or await _customer(api, tenant)
    body = {**await _mandate_body(api, tenant), "customer_id": customer}
    api.last_customer[tenant.tenant_id] = customer  # The mandate body made another.
    made = await api.created(tenant, "/v1/mandates", body)
    await api.pool.execute(
        "UPDATE mandates SET status = 'active' WHERE id = $1",
        uuid.UUID(int=decode_id("mdt", made["id"])),
    )
    return {**schedule_body, "mandate_id": made["id"]}


async def _pull_body(api: Api, tenant: Tenant) -> Any:
    """A pull under a new active mandate of the tenant's latest customer (the one a pull's
    path names, made just before its body)."""
    customer = await api.pool.fetchval(
        "SELECT id FROM customers WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1",
        tenant.tenant_id,
    )
    mandate = await _mandate(api, tenant)
    if customer is not None:
        await api.pool.execute(
            "UPDATE mandates SET customer_id = $2 WHERE id = $1",
            uuid.UUID(int=decode_id("mdt", mandate)),
            customer,
        )
    return {"mandate_id": mandate, "amount": payment_minor}


collection_body = {"amount": payment_minor, "reference": "matrix collection"}
bucket_body = {"kind": "savings", "name": "matrix bucket", "currency": "EUR"}
preview_body = {"amount": payment_minor, "currency": "EUR"}


async def _rule_body(api: Api, tenant: Tenant) -> Any:
    """A rule on a bucket of the customer the path names: the tenant's latest."""
    return {"bucket_id": await _bucket(api, tenant), "kind": "remainder"}


quote_body = {"source_currency": "EUR", "target_currency": "EUR", "source_amount": payment_minor}
hold_body = {"currency": "EUR", "amount": payment_minor}
# No external id: the matrices create many customers with this one body.
customer_body = {"name": "Adaeze Okafor", "email": "adaeze@example.com", "country": "NG"}
schedule_body = {"kind": "cron", "amount": payment_minor, "cron": "0 9 1 * *", "timezone": "UTC"}
partner_body = {
    "kind": "savings",
    "name": "Matrix Savings",
    "currency": "EUR",
    "adapter": "sandbox",
    "reference": "matrix-savings",
}
requests: Mapping[tuple[str, str], Request] = {
    ("GET", "/v1/balances"): Request(200),
    ("GET", "/v1/statements"): Request(200, query={"currency": "EUR"}),
    ("GET", "/v1/funding-instructions"): Request(200, query={"currency": "EUR"}),
    ("POST", "/v1/deposits"): Request(201, _static({"currency": "EUR", "amount": 100})),
    ("POST", "/v1/holds"): Request(201, _static(hold_body)),
    ("GET", "/v1/holds/{hold_id}"): Request(200),
    ("POST", "/v1/holds/{hold_id}/capture"): Request(200, _static({})),
    ("POST", "/v1/holds/{hold_id}/void"): Request(200, _static({})),
    ("POST", "/v1/quotes"): Request(201, _static(quote_body)),
    ("GET", "/v1/quotes/{quote_id}"): Request(200),
    ("POST", "/v1/recipients"): Request(201, _static(recipients["EUR"])),
    ("GET", "/v1/recipients/{recipient_id}"): Request(200),
    ("POST", "/v1/transfers"): Request(201, _transfer_body),
    ("GET", "/v1/transfers"): Request(200),
    ("GET", "/v1/transfers/{transfer_id}"): Request(200),
    ("POST", "/v1/transfers/{transfer_id}/cancel"): Request(200, _static({})),
    ("GET", "/v1/transfers/{transfer_id}/messages"): Request(200),
    ("POST", "/v1/batches"): Request(201, _batch_body),
    ("GET", "/v1/batches/{batch_id}"): Request(200),
    ("GET", "/v1/batches/{batch_id}/messages"): Request(200),
    ("POST", "/v1/customers"): Request(201, _static(customer_body)),
    ("GET", "/v1/customers"): Request(200),
    ("GET", "/v1/customers/{customer_id}"): Request(200),
    ("POST", "/v1/customers/{customer_id}/buckets"): Request(201, _static(bucket_body)),
    ("GET", "/v1/customers/{customer_id}/buckets"): Request(200),
    ("POST", "/v1/customers/{customer_id}/rules"): Request(201, _rule_body),
    ("GET", "/v1/customers/{customer_id}/rules"): Request(200),
    ("DELETE", "/v1/customers/{customer_id}/rules/{rule_id}"): Request(200),
    ("POST", "/v1/customers/{customer_id}/allocations/preview"): Request(
        200, _static(preview_body)
    ),
    ("GET", "/v1/customers/{customer_id}/income-forecast"): Request(200, query={"currency": "EUR"}),
    ("POST", "/v1/customers/{customer_id}/schedules"): Request(201, _schedule_body),
    ("GET", "/v1/customers/{customer_id}/schedules"): Request(200),
    ("DELETE", "/v1/customers/{customer_id}/schedules/{schedule_id}"): Request(200),
    ("POST", "/v1/mandates"): Request(201, _mandate_body),
    ("GET", "/v1/mandates"): Request(200),
    ("GET", "/v1/mandates/{mandate_id}"): Request(200),
    ("POST", "/v1/mandates/{mandate_id}/deactivate"): Request(200, _static({})),
    ("POST", "/v1/mandates/{mandate_id}/collect"): Request(201, _static(collection_body)),
    ("GET", "/v1/collections"): Request(200),
    ("GET", "/v1/collections/{collection_id}"): Request(200),
    ("GET", "/v1/collections/{collection_id}/messages"): Request(200),
    ("POST", "/v1/partners"): Request(201, _static(partner_body)),
    ("GET", "/v1/partners"): Request(200),
    ("GET", "/v1/partners/{partner_id}"): Request(200),
    ("POST", "/v1/customers/{customer_id}/pulls"): Request(201, _pull_body),
    ("GET", "/v1/orchestrations"): Request(200),
    ("GET", "/v1/orchestrations/{orchestration_id}"): Request(200),
    ("GET", "/v1/compliance/cases"): Request(200),
    ("POST", "/v1/compliance/cases/{case_id}/decision"): Request(
        200, _static({"decision": "approve", "note": "a namesake of the listed party"})
    ),
    ("POST", "/v1/webhook-endpoints"): Request(201, _static({"url": webhook_url})),
    ("GET", "/v1/webhook-endpoints"): Request(200),
    ("GET", "/v1/webhook-endpoints/{endpoint_id}"): Request(200),
    ("PATCH", "/v1/webhook-endpoints/{endpoint_id}"): Request(200, _static({"description": "x"})),
    ("DELETE", "/v1/webhook-endpoints/{endpoint_id}"): Request(200),
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret"): Request(200, _static({})),
    ("GET", "/v1/events"): Request(200),
    ("GET", "/v1/events/{event_id}"): Request(200),
    ("POST", "/v1/events/{event_id}/redeliver"): Request(202, _static({})),
}
# Litestar answers OPTIONS for every path itself, without a handler of Kovra's.
options_request = Request(204)


def request_for(method: str, route: str) -> Request:
    """The request that exercises the route; a route without one fails the matrix."""
    if method == "OPTIONS":
        return options_request
    found = requests.get((method, route))
    assert found is not None, f"tests/gateway/api_matrix.py has no request for {method} {route}"
    return found


# Where each kind of object is read back, for a snapshot (cases have no route of their own).
read_paths = {
    "hold_id": "/v1/holds/{hold_id}",
    "quote_id": "/v1/quotes/{quote_id}",
    "recipient_id": "/v1/recipients/{recipient_id}",
    "transfer_id": "/v1/transfers/{transfer_id}",
    "batch_id": "/v1/batches/{batch_id}",
    "endpoint_id": "/v1/webhook-endpoints/{endpoint_id}",
    "event_id": "/v1/events/{event_id}",
    "customer_id": "/v1/customers/{customer_id}",
    "mandate_id": "/v1/mandates/{mandate_id}",
    "collection_id": "/v1/collections/{collection_id}",
    "partner_id": "/v1/partners/{partner_id}",
    "orchestration_id": "/v1/orchestrations/{orchestration_id}",
}


@dataclass(frozen=True)
class Snapshot:
    """What a request could change for one tenant, as comparable values."""

    tables: dict[str, str]
    balances: Any
    objects: dict[str, Any]


# Objects with no read route of their own: the query that reads one, and its id's prefix.
row_reads: Mapping[str, tuple[str, str]] = {
    "rule_id": ("SELECT * FROM rules WHERE id = $1", "rul"),
    "schedule_id": ("SELECT * FROM schedules WHERE id = $1", "sch"),
}


class Api:
    """The app in this process, its database, and what the matrices make through it."""

    def __init__(self, app: Litestar, client: httpx.AsyncClient) -> None:
        self.app = app
        self.client = client
        self.pool: asyncpg.Pool = app.state.runtime.pool
        self._recipients: dict[tuple[int, str], str] = {}
        self._policies = itertools.count(1)
        # The customer made last for each tenant: a schedule's path names its customer.
        self.last_customer: dict[int, str] = {}

    async def tenant(
        self, name: str, *, requests_per_minute: int = requests_per_minute_max
    ) -> Tenant:
        """A new tenant with a key of every role and EUR in its wallet, whose limits never
        throttle the matrix unless `requests_per_minute` says otherwise."""
        policy = f"matrix-{next(self._policies)}"  # The module's database is its own.
        limits = {"name": policy, "requests_per_minute": requests_per_minute}
        await self._admin(
            "POST", "/admin/v1/limit-policies", {**limits, "daily_limit_usd_minor": 10**15}
        )
        created = await self._admin(
            "POST", "/admin/v1/tenants", {"name": name, "tier": "enterprise"}
        )
        tenant_id = int(created["tenant_id"])
        await self._admin(
            "PUT",
            f"/admin/v1/tenants/{tenant_id}/policies",
            {"pricing_policy": "enterprise", "limit_policy": policy},
        )
        keys = {"admin": str(created["api_key"])}
        for role in roles:
            if role not in keys:
                issued = await self._admin(
                    "POST", f"/admin/v1/tenants/{tenant_id}/api-keys", {"role": role}
                )
                keys[role] = str(issued["secret"])
        tenant = Tenant(tenant_id=tenant_id, keys=keys)
        await self.created(tenant, "/v1/deposits", {"currency": "EUR", "amount": deposit_minor})
        return tenant

    async def _admin(self, method: str, path: str, body: Any) -> Any:
        response = await self.client.request(method, path, json=body, headers=admin)
        assert response.is_success, response.text
        return response.json()

    async def created(self, tenant: Tenant, path: str, body: Any) -> Any:
        """POST with the tenant's admin key; the answer, which must be a 201."""
        response = await self.client.post(path, json=body, headers=tenant.headers("admin"))
        assert response.status_code == 201, response.text
        return response.json()

    async def call(
        self, method: str, route: str, *, ids: Mapping[str, str], key: str, body: Any = None
    ) -> httpx.Response:
        """The route's request, with `ids` in its path, sent with `key`."""
        return await self.client.request(
            method,
            route.format(**ids),
            params=request_for(method, route).query,
            json=body,
            headers={"Authorization": f"Bearer {key}"},
        )

    async def recipient(self, tenant: Tenant, name: str = "Lieferant GmbH") -> str:
        """The tenant's EUR recipient of this name, made once."""
        known = self._recipients.get((tenant.tenant_id, name))
        if known is None:
            made = await self.created(tenant, "/v1/recipients", {**recipients["EUR"], "name": name})
            known = self._recipients[(tenant.tenant_id, name)] = str(made["id"])
        return known

    async def make(self, parameter: str, tenant: Tenant) -> str:
        """A new object of the tenant for a path parameter, in the state in which the
        routes naming it act on it (a hold pending, a transfer processing, a case open)."""
        maker = makers.get(parameter) or admin_makers.get(parameter)
        assert maker is not None, f"tests/gateway/api_matrix.py cannot make a {parameter}"
        return await maker(self, tenant)

    async def snapshot(
        self, tenant: Tenant, ids: Mapping[str, str], *, whole_database: bool = True
    ) -> Snapshot:
        """The tenant's balances and objects (`ids`), with every row of the database, or,
        when others may have written meanwhile, every row that is the tenant's."""
        tables = await table_digests(
            self.pool, tenant_id=None if whole_database else tenant.tenant_id
        )
        balances = await self.client.get("/v1/balances", headers=tenant.headers("read_only"))
        assert balances.status_code == 200, balances.text
        objects = {
            parameter: await self._read(tenant, parameter, id_) for parameter, id_ in ids.items()
        }
        return Snapshot(tables=tables, balances=balances.json(), objects=objects)

    async def _read(self, tenant: Tenant, parameter: str, id_: str) -> Any:
        if parameter == "case_id":
            return await self.case(tenant, id_)
        if parameter in row_reads:  # Listed under their customer; each row says it whole.
            query, prefix = row_reads[parameter]
            row = await self.pool.fetchrow(query, uuid.UUID(int=decode_id(prefix, id_)))
            return None if row is None else {key: str(value) for key, value in row.items()}
        path = read_paths[parameter].format(**{parameter: id_})
        response = await self.client.get(path, headers=tenant.headers("read_only"))
        assert response.status_code == 200, response.text
        return response.json()

    async def case(self, tenant: Tenant, case_id: str) -> dict[str, Any]:
        """The tenant's case, found in its queue."""
        cursor: str | None = None
        while True:
            params = {"status": "all", "limit": "100", **({"cursor": cursor} if cursor else {})}
            response = await self.client.get(
                "/v1/compliance/cases", params=params, headers=tenant.headers("read_only")
            )
            assert response.status_code == 200, response.text
            page = response.json()
            for case in page["data"]:
                if case["id"] == case_id:
                    return case  # type: ignore[no-any-return]
            cursor = page["next_cursor"]
            assert cursor is not None, f"no case {case_id} in the tenant's queue"


async def table_digests(pool: asyncpg.Pool, *, tenant_id: int | None = None) -> dict[str, str]:
    """A digest of every table's rows; with `tenant_id`, of the tenant's rows of every table
    that has them (its `tenants` row, and every row whose `tenant_id` is the tenant's)."""
    tables = await pool.fetch(
        "SELECT table_name, bool_or(column_name = 'tenant_id') AS per_tenant "
        "FROM information_schema.tables JOIN information_schema.columns "
        "USING (table_schema, table_name) "
        "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' "
        "GROUP BY table_name ORDER BY table_name"
    )
    digests: dict[str, str] = {}
    for table, per_tenant in tables:
        if tenant_id is None:
            where = ""
        elif per_tenant:
            where = f"WHERE t.tenant_id = {tenant_id:d}"
        elif table == "tenants":
            where = f"WHERE t.id = {tenant_id:d}"
        else:
            continue
        digests[table] = await pool.fetchval(
            f"SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) "
            f'FROM "{table}" t {where}'
        )
    return digests


async def _hold(api: Api, tenant: Tenant) -> str:
    return str((await api.created(tenant, "/v1/holds", hold_body))["id"])


async def _quote(api: Api, tenant: Tenant) -> str:
    return str((await api.created(tenant, "/v1/quotes", quote_body))["id"])


async def _recipient(api: Api, tenant: Tenant) -> str:
    return str((await api.created(tenant, "/v1/recipients", recipients["EUR"]))["id"])


async def _transfer(api: Api, tenant: Tenant) -> str:
    made = await api.created(tenant, "/v1/transfers", await _transfer_body(api, tenant))
    assert made["status"] == "processing", made
    return str(made["id"])


async def _batch(api: Api, tenant: Tenant) -> str:
    return str((await api.created(tenant, "/v1/batches", await _batch_body(api, tenant)))["id"])


async def _case(api: Api, tenant: Tenant) -> str:
    body = {
        "quote_id": await _quote(api, tenant),
        "recipient_id": await api.recipient(tenant, near_match_name),
        "reference": "INV-review",
    }
    transfer = await api.created(tenant, "/v1/transfers", body)
    assert transfer["status"] == "in_review", transfer
    case_id = await api.pool.fetchval(
        "SELECT id FROM compliance_cases WHERE transfer_id = $1",
        uuid.UUID(int=decode_id("tr", transfer["id"])),
    )
    return encode_id("case", case_id.int)


async def _endpoint(api: Api, tenant: Tenant) -> str:
    return str((await api.created(tenant, "/v1/webhook-endpoints", {"url": webhook_url}))["id"])


async def _event(api: Api, tenant: Tenant) -> str:
    deposit = await api.created(tenant, "/v1/deposits", {"currency": "EUR", "amount": 1})
    event_id = await api.pool.fetchval(
        "SELECT id FROM events WHERE object_id = $1",
        uuid.UUID(int=decode_id("dep", deposit["id"])),
    )
    return encode_id("evt", event_id.int)


async def _ingested(api: Api, entry: EntrySpec) -> Any:
    """A camt.054 with `entry`, ingested through the admin plane."""
    unique = uuid.uuid4().hex[:30]
    spec = FileSpec(kind="camt.054", message_id=unique, report_id=unique, entries=(entry,))
    answer = await api.client.post(
        "/admin/v1/statements",
        content=camt(spec),
        headers={**admin, "Content-Type": "application/xml"},
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


async def _statement(api: Api, tenant: Tenant) -> str:
    """A statement with two credits to the tenant, so its entries page."""
    reference = funding_reference(tenant.tenant_id)
    entries = [
        EntrySpec(amount="1.00", servicer_reference=uuid.uuid4().hex, creditor_reference=reference)
        for _ in range(2)
    ]
    unique = uuid.uuid4().hex[:30]
    spec = FileSpec(kind="camt.054", message_id=unique, report_id=unique, entries=tuple(entries))
    answer = await api.client.post(
        "/admin/v1/statements",
        content=camt(spec),
        headers={**admin, "Content-Type": "application/xml"},
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["statements"][0]["id"])


async def _exception(api: Api, _: Tenant) -> str:
    """An open exception: a credit that names no tenant."""
    await _ingested(api, EntrySpec(amount="1.00", servicer_reference=uuid.uuid4().hex))
    answer = await api.client.get(
        "/admin/v1/exceptions", params={"status": "open", "limit": "1"}, headers=admin
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["data"][0]["id"])


async def _customer(api: Api, tenant: Tenant) -> str:
    made = str((await api.created(tenant, "/v1/customers", customer_body))["id"])
    api.last_customer[tenant.tenant_id] = made
    return made


async def _latest_customer(api: Api, tenant: Tenant) -> str:
    """The tenant's customer made last (the one a path names, made just before), or a new
    one."""
    found = await api.pool.fetchval(
        "SELECT id FROM customers WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1",
        tenant.tenant_id,
    )
    return await _customer(api, tenant) if found is None else encode_id("cus", found.int)


async def _bucket(api: Api, tenant: Tenant) -> str:
    customer = await _latest_customer(api, tenant)
    return str((await api.created(tenant, f"/v1/customers/{customer}/buckets", bucket_body))["id"])


async def _rule(api: Api, tenant: Tenant) -> str:
    """A live rule of the tenant's latest customer (the one a path names)."""
    customer = await _latest_customer(api, tenant)
    body = {"bucket_id": await _bucket(api, tenant), "kind": "remainder"}
    return str((await api.created(tenant, f"/v1/customers/{customer}/rules", body))["id"])


async def _mandate(api: Api, tenant: Tenant) -> str:
    """An active mandate: no worker runs here, so its provider's activation is written as
    the worker would apply it."""
    made = await api.created(tenant, "/v1/mandates", await _mandate_body(api, tenant))
    await api.pool.execute(
        """UPDATE mandates SET status = 'active', provider_reference = 'SBX-M-' || id::text,
                  activated_at = now() WHERE id = $1""",
        uuid.UUID(int=decode_id("mdt", made["id"])),
    )
    return str(made["id"])


async def _schedule(api: Api, tenant: Tenant) -> str:
    customer = api.last_customer.get(tenant.tenant_id) or await _customer(api, tenant)
    made = await api.created(
        tenant, f"/v1/customers/{customer}/schedules", await _schedule_body(api, tenant)
    )
    return str(made["id"])


async def _partner(api: Api, tenant: Tenant) -> str:
    return str((await api.created(tenant, "/v1/partners", partner_body))["id"])


async def _orchestration(api: Api, tenant: Tenant) -> str:
    customer = await _customer(api, tenant)
    body = await _pull_body(api, tenant)
    made = await api.created(tenant, f"/v1/customers/{customer}/pulls", body)
    return str(made["id"])


async def _collection(api: Api, tenant: Tenant) -> str:
    mandate = await _mandate(api, tenant)
    made = await api.created(tenant, f"/v1/mandates/{mandate}/collect", collection_body)
    return str(made["id"])


makers: Mapping[str, Callable[[Api, Tenant], Awaitable[str]]] = {
    "hold_id": _hold,
    "quote_id": _quote,
    "recipient_id": _recipient,
    "transfer_id": _transfer,
    "batch_id": _batch,
    "case_id": _case,
    "endpoint_id": _endpoint,
    "event_id": _event,
    "customer_id": _customer,
    "mandate_id": _mandate,
    "collection_id": _collection,
    "schedule_id": _schedule,
    "partner_id": _partner,
    "orchestration_id": _orchestration,
    "rule_id": _rule,
}
# Objects of the admin plane, which belong to no tenant (the isolation matrix leaves them).
admin_makers: Mapping[str, Callable[[Api, Tenant], Awaitable[str]]] = {
    "statement_id": _statement,
    "exception_id": _exception,
}
