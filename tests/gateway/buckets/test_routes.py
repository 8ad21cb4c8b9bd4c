"""Buckets, rules and the allocation preview through the API (the whole ASGI app in this
process, real Postgres, Redis and the embedded ledger): buckets and rules are created and
listed; the preview splits an amount to the minor unit and moves nothing; another tenant's
customer and rule are `404` and change nothing; a deleted rule is audited with its actor and
no longer applies; each rule field that does not fit its kind, and a bucket not the
customer's, is a 422 naming the field; the `bucket.created` event is written with the
bucket; and a run's plan, recorded twice, is one set of lines, whose money the bucket list
then shows from the ledger, and whose amounts count against a rule's period cap."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from gateway.buckets.service import Buckets, line_id_for
from gateway.http.ids import decode_id
from ledger.buckets import Allocation, AllocationLeg, BucketsLedger
from ledger.service import Posted
from tests import redis_server
from tests.gateway.api_matrix import Api, Tenant, api_for_a_module, customer_body

redis_url = redis_server.redis_url(14)  # This module's own database, emptied around it.
on_the_modules_loop = pytest.mark.asyncio(loop_scope="module")
pytestmark = on_the_modules_loop


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    async with api_for_a_module(tmp_path_factory.mktemp("buckets"), redis_url=redis_url) as made:
        yield made


async def _customer(api: Api, tenant: Tenant) -> str:
    return str((await api.created(tenant, "/v1/customers", customer_body))["id"])


async def _post(api: Api, tenant: Tenant, path: str, body: Any, **headers: str) -> Any:
    return await api.client.post(path, json=body, headers={**tenant.headers("admin"), **headers})


async def _get(api: Api, tenant: Tenant, path: str, **params: str) -> Any:
    return await api.client.get(path, params=params, headers=tenant.headers("read_only"))


async def _bucket(api: Api, tenant: Tenant, customer: str, name: str = "Rainy day") -> str:
    body = {"kind": "savings", "name": name, "currency": "EUR", "target_amount": 100_000}
    return str((await api.created(tenant, f"/v1/customers/{customer}/buckets", body))["id"])


async def _rule(api: Api, tenant: Tenant, customer: str, body: dict[str, Any]) -> dict[str, Any]:
    made: dict[str, Any] = await api.created(tenant, f"/v1/customers/{customer}/rules", body)
    return made


async def _preview(api: Api, tenant: Tenant, customer: str, amount: int) -> Any:
    answer = await _post(
        api,
        tenant,
        f"/v1/customers/{customer}/allocations/preview",
        {"amount": amount, "currency": "EUR"},
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def _service(api: Api) -> Buckets:
    buckets: Buckets = api.app.state.runtime.buckets
    return buckets


async def test_buckets_and_rules_are_created_listed_and_previewed_to_the_minor_unit(
    api: Api,
) -> None:
    tenant = await api.tenant("buckets-preview")
    customer = await _customer(api, tenant)
    savings = await _bucket(api, tenant, customer, "Savings")
    rent = await _bucket(api, tenant, customer, "Rent")
    tax = await _bucket(api, tenant, customer, "Tax")
    listed = (await _get(api, tenant, f"/v1/customers/{customer}/buckets")).json()
    assert [b["id"] for b in listed["data"]] == [savings, rent, tax]
    assert {(b["balance"], b["delivered"], b["pending_delivery"]) for b in listed["data"]} == {
        (0, 0, 0)
    }
    assert listed["data"][0]["target_amount"] == 100_000
    rent_rule = await _rule(
        api, tenant, customer, {"bucket_id": rent, "kind": "fixed", "amount": 80_000, "priority": 1}
    )
    tax_rule = await _rule(
        api, tenant, customer, {"bucket_id": tax, "kind": "percentage", "percent_bps": 1_234}
    )
    rest_rule = await _rule(
        api,
        tenant,
        customer,
        {"bucket_id": savings, "kind": "remainder", "conditions": {"minimum_left": 5_000}},
    )
    assert rent_rule["status"] == "active"
    rules = (await _get(api, tenant, f"/v1/customers/{customer}/rules")).json()["data"]
    assert [r["id"] for r in rules] == [rent_rule["id"], tax_rule["id"], rest_rule["id"]]
    # 100,001: rent takes 80,000 first; tax 12.34% of the whole (12,340.1234 → 12,340);
    # savings the rest but 5,000, which stays unallocated.
    preview = await _preview(api, tenant, customer, 100_001)
    assert preview["allocations"] == [
        {"rule_id": rent_rule["id"], "bucket_id": rent, "amount": 80_000},
        {"rule_id": tax_rule["id"], "bucket_id": tax, "amount": 12_340},
        {"rule_id": rest_rule["id"], "bucket_id": savings, "amount": 2_661},
    ]
    assert (preview["unallocated"], preview["amount"], preview["currency"]) == (
        5_000,
        100_001,
        "EUR",
    )
    # A short amount: rent takes it all, tax its share of nothing left.
    short = await _preview(api, tenant, customer, 70_000)
    assert [a["amount"] for a in short["allocations"]] == [70_000]
    assert short["unallocated"] == 0
    # A preview moves nothing.
    after = (await _get(api, tenant, f"/v1/customers/{customer}/buckets")).json()["data"]
    assert {b["balance"] for b in after} == {0}


async def test_a_bucket_is_created_once_per_idempotency_key_with_its_event(api: Api) -> None:
    tenant = await api.tenant("buckets-event")
    customer = await _customer(api, tenant)
    body = {"kind": "rent", "name": "Flat", "currency": "EUR"}
    path = f"/v1/customers/{customer}/buckets"
    first = await _post(api, tenant, path, body, **{"Idempotency-Key": "bkt-1"})
    again = await _post(api, tenant, path, body, **{"Idempotency-Key": "bkt-1"})
    assert (first.status_code, again.status_code) == (201, 201), first.text
    assert again.json() == first.json()
    assert len((await _get(api, tenant, path)).json()["data"]) == 1
    events = (await _get(api, tenant, "/v1/events", type="bucket.created")).json()["data"]
    assert [event["data"]["id"] for event in events] == [first.json()["id"]]
    assert events[0]["data"]["customer_id"] == customer


async def test_another_tenants_customer_and_rule_are_not_found(api: Api) -> None:
    owner = await api.tenant("buckets-owner")
    intruder = await api.tenant("buckets-intruder")
    customer = await _customer(api, owner)
    bucket = await _bucket(api, owner, customer)
    rule = await _rule(api, owner, customer, {"bucket_id": bucket, "kind": "remainder"})
    for method, path, body in (
        ("GET", f"/v1/customers/{customer}/buckets", None),
        (
            "POST",
            f"/v1/customers/{customer}/buckets",
            {"kind": "tax", "name": "x", "currency": "EUR"},
        ),
        ("GET", f"/v1/customers/{customer}/rules", None),
        ("POST", f"/v1/customers/{customer}/rules", {"bucket_id": bucket, "kind": "remainder"}),
        ("DELETE", f"/v1/customers/{customer}/rules/{rule['id']}", None),
        ("POST", f"/v1/customers/{customer}/allocations/preview", {"amount": 1, "currency": "EUR"}),
    ):
        answer = await api.client.request(
            method, path, json=body, headers=intruder.headers("admin")
        )
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.json()["code"] == "not_found"
    # The intruder's own customer cannot name the owner's bucket or rule either.
    own = await _customer(api, intruder)
    refused = await _post(
        api, intruder, f"/v1/customers/{own}/rules", {"bucket_id": bucket, "kind": "remainder"}
    )
    assert refused.status_code == 422, refused.text
    assert (refused.json()["code"], refused.json()["errors"][0]["field"]) == (
        "unknown_bucket",
        "bucket_id",
    )
    deleted = await api.client.delete(
        f"/v1/customers/{own}/rules/{rule['id']}", headers=intruder.headers("admin")
    )
    assert deleted.status_code == 404
    preview = await _preview(api, owner, customer, 1_000)
    assert [a["rule_id"] for a in preview["allocations"]] == [rule["id"]]


async def test_a_deleted_rule_is_audited_and_no_longer_applies(api: Api) -> None:
    tenant = await api.tenant("buckets-delete")
    customer = await _customer(api, tenant)
    bucket = await _bucket(api, tenant, customer)
    rule = await _rule(api, tenant, customer, {"bucket_id": bucket, "kind": "fixed", "amount": 300})
    assert [a["amount"] for a in (await _preview(api, tenant, customer, 1_000))["allocations"]] == [
        300
    ]
    path = f"/v1/customers/{customer}/rules/{rule['id']}"
    deleted = await api.client.delete(path, headers=tenant.headers("operator"))
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["status"] == "deleted"
    assert deleted.json()["deleted_at"] is not None
    again = await api.client.delete(path, headers=tenant.headers("admin"))
    assert again.json() == deleted.json()
    preview = await _preview(api, tenant, customer, 1_000)
    assert (preview["allocations"], preview["unallocated"]) == ([], 1_000)
    assert (await _get(api, tenant, f"/v1/customers/{customer}/rules")).json()["data"] == []
    rule_uuid = uuid.UUID(int=decode_id("rul", rule["id"]))
    audited = await api.pool.fetch(
        "SELECT action, actor FROM audit_outbox WHERE target = $1 ORDER BY decided_at",
        f"rule:{rule_uuid}",
    )
    key_ids = [
        await api.pool.fetchval(
            "SELECT id FROM api_keys WHERE tenant_id = $1 AND role = $2", tenant.tenant_id, role
        )
        for role in ("admin", "operator")
    ]
    assert [(row["action"], row["actor"]) for row in audited] == [
        ("rule.create", f"tenant:{tenant.tenant_id}:key:{key_ids[0]}"),
        ("rule.delete", f"tenant:{tenant.tenant_id}:key:{key_ids[1]}"),
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "percentage"}, "percent_bps"),
        ({"kind": "percentage", "percent_bps": 10, "amount": 5}, "amount"),
        ({"kind": "fixed"}, "amount"),
        ({"kind": "fixed", "amount": 5, "above": 1}, "above"),
        ({"kind": "threshold", "amount": 5}, "amount"),
        ({"kind": "threshold"}, "above"),
        ({"kind": "remainder", "percent_bps": 10}, "percent_bps"),
        ({"kind": "percentage", "percent_bps": 10_001}, "percent_bps"),
        ({"kind": "fixed", "amount": 0}, "amount"),
        ({"kind": "split"}, "kind"),
        ({"kind": "remainder", "priority": -1}, "priority"),
        (
            {"kind": "remainder", "conditions": {"days_of_month": [0]}},
            "conditions.days_of_month[0]",
        ),
        (
            {
                "kind": "remainder",
                "conditions": {"maximum_per_period": {"amount": 5, "period": "year"}},
            },
            "conditions.maximum_per_period.period",
        ),
        (
            {
                "kind": "remainder",
                "conditions": {
                    "active_from": "2026-05-01T00:00:00Z",
                    "active_until": "2026-04-01T00:00:00Z",
                },
            },
            "conditions.active_until",
        ),
        ({"kind": "remainder", "bucket_id": "bkt_nope"}, "bucket_id"),
    ],
)
async def test_a_rule_field_that_does_not_fit_is_a_422_naming_it(
    api: Api, body: dict[str, Any], field: str
) -> None:
    tenant = await api.tenant(f"buckets-bad-{field}")
    customer = await _customer(api, tenant)
    bucket = await _bucket(api, tenant, customer)
    refused = await _post(
        api, tenant, f"/v1/customers/{customer}/rules", {"bucket_id": bucket, **body}
    )
    assert refused.status_code == 422, refused.text
    assert [error["field"] for error in refused.json()["errors"]] == [field]
    assert (await _get(api, tenant, f"/v1/customers/{customer}/rules")).json()["data"] == []


async def test_an_account_reference_needs_a_partner(api: Api) -> None:
    tenant = await api.tenant("buckets-reference")
    customer = await _customer(api, tenant)
    refused = await _post(
        api,
        tenant,
        f"/v1/customers/{customer}/buckets",
        {"kind": "loan", "name": "Car", "currency": "EUR", "account_reference": "LN-1"},
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "account_reference"
    unknown = await _post(
        api,
        tenant,
        f"/v1/customers/{customer}/buckets",
        {"kind": "loan", "name": "Car", "currency": "EUR", "partner_id": "ptn_nope"},
    )
    assert unknown.status_code == 422, unknown.text
    assert (unknown.json()["code"], unknown.json()["errors"][0]["field"]) == (
        "unknown_partner",
        "partner_id",
    )
    assert (await _get(api, tenant, f"/v1/customers/{customer}/buckets")).json()["data"] == []


async def test_a_runs_plan_is_recorded_once_and_its_money_shows_in_the_buckets(api: Api) -> None:
    tenant = await api.tenant("buckets-plan")
    customer = await _customer(api, tenant)
    savings = await _bucket(api, tenant, customer, "Savings")
    rent = await _bucket(api, tenant, customer, "Rent")
    rent_rule = await _rule(
        api, tenant, customer, {"bucket_id": rent, "kind": "fixed", "amount": 700, "priority": 1}
    )
    rest_rule = await _rule(api, tenant, customer, {"bucket_id": savings, "kind": "remainder"})
    buckets = _service(api)
    customer_id = uuid.UUID(int=decode_id("cus", customer))
    run = uuid.uuid4()
    now = datetime.datetime.now(tz=datetime.UTC)

    async def plan_and_record() -> tuple[Any, ...]:
        plan = await buckets.plan(
            tenant_id=tenant.tenant_id,
            customer_id=customer_id,
            orchestration_id=run,
            currency="EUR",
            amount_minor=1_000,
            at=now,
        )
        async with api.pool.acquire() as connection, connection.transaction():
            return await buckets.record_plan(
                connection, compliance_region="EU", plan=plan, allocated_at=now
            )

    first = await plan_and_record()
    assert [(line.bucket_id.int, line.amount_minor) for line in first] == [
        (decode_id("bkt", rent), 700),
        (decode_id("bkt", savings), 300),
    ]
    rent_rule_id = uuid.UUID(int=decode_id("rul", rent_rule["id"]))
    assert first[0].line_id == line_id_for(run, rent_rule_id)
    # Rules changed meanwhile change nothing for this run: it keeps its first plan.
    await api.client.delete(
        f"/v1/customers/{customer}/rules/{rest_rule['id']}", headers=tenant.headers("admin")
    )
    await _rule(
        api, tenant, customer, {"bucket_id": savings, "kind": "fixed", "amount": 5, "priority": 0}
    )
    assert await plan_and_record() == first
    assert await buckets.lines(orchestration_id=run) == first
    count = await api.pool.fetchval(
        "SELECT count(*) FROM allocation_lines WHERE orchestration_id = $1", run
    )
    assert count == 2
    # The lines moved through the ledger show in the bucket list, read from TigerBeetle.
    ledger: BucketsLedger = buckets._ledger  # The process's own ledger.
    (moved,) = await ledger.allocate_many(
        [
            Allocation(
                orchestration_id=run.int,
                tenant_id=tenant.tenant_id,
                currency_code="EUR",
                legs=tuple(
                    AllocationLeg(
                        line_id=line.line_id.int,
                        bucket_sub_account=line.bucket_sub_account,
                        amount_minor=line.amount_minor,
                    )
                    for line in first
                ),
            )
        ]
    )
    assert isinstance(moved, Posted)
    listed = (await _get(api, tenant, f"/v1/customers/{customer}/buckets")).json()["data"]
    assert [(b["id"], b["balance"]) for b in listed] == [(savings, 300), (rent, 700)]


async def test_a_period_cap_counts_the_lines_other_runs_recorded(api: Api) -> None:
    tenant = await api.tenant("buckets-cap")
    customer = await _customer(api, tenant)
    bucket = await _bucket(api, tenant, customer)
    await _rule(
        api,
        tenant,
        customer,
        {
            "bucket_id": bucket,
            "kind": "remainder",
            "conditions": {"maximum_per_period": {"amount": 1_000, "period": "day"}},
        },
    )
    buckets = _service(api)
    customer_id = uuid.UUID(int=decode_id("cus", customer))
    now = datetime.datetime.now(tz=datetime.UTC)
    recorded = []
    for amount in (600, 600, 600):
        run = uuid.uuid4()
        plan = await buckets.plan(
            tenant_id=tenant.tenant_id,
            customer_id=customer_id,
            orchestration_id=run,
            currency="EUR",
            amount_minor=amount,
            at=now,
        )
        async with api.pool.acquire() as connection, connection.transaction():
            lines = await buckets.record_plan(
                connection, compliance_region="EU", plan=plan, allocated_at=now
            )
        recorded.append((sum(line.amount_minor for line in lines), plan.unallocated_minor))
        # The run's own lines do not count against it when it is planned again.
        again = await buckets.plan(
            tenant_id=tenant.tenant_id,
            customer_id=customer_id,
            orchestration_id=run,
            currency="EUR",
            amount_minor=amount,
            at=now,
        )
        assert again.lines == plan.lines
    assert recorded == [(600, 0), (400, 200), (0, 600)]
    assert (await _preview(api, tenant, customer, 500))["unallocated"] == 500
    # The next day the cap starts again.
    tomorrow = await buckets.plan(
        tenant_id=tenant.tenant_id,
        customer_id=customer_id,
        orchestration_id=uuid.uuid4(),
        currency="EUR",
        amount_minor=600,
        at=now + datetime.timedelta(days=1),
    )
    assert tomorrow.unallocated_minor == 0


async def test_a_bucket_paid_to_a_partner_keeps_its_ledger_number(api: Api) -> None:
    tenant = await api.tenant("buckets-partner")
    other = await api.tenant("buckets-partner-other")
    customer = await _customer(api, tenant)
    partner_body = {
        "kind": "pension",
        "name": "Pension fund",
        "currency": "EUR",
        "adapter": "sandbox",
        "reference": "PF-1",
    }
    partner = (await api.created(tenant, "/v1/partners", partner_body))["id"]
    foreign = (await api.created(other, "/v1/partners", partner_body))["id"]
    path = f"/v1/customers/{customer}/buckets"
    body = {"kind": "pension", "name": "Pension", "currency": "EUR", "account_reference": "P-9"}
    made = await api.created(tenant, path, {**body, "partner_id": partner})
    assert (made["partner_id"], made["account_reference"]) == (partner, "P-9")
    stored = await api.pool.fetchrow(
        """SELECT b.partner_ledger_number, p.ledger_number FROM buckets b
             JOIN partners p ON p.id = b.partner_id WHERE b.id = $1""",
        uuid.UUID(int=decode_id("bkt", made["id"])),
    )
    assert stored is not None
    assert stored["partner_ledger_number"] == stored["ledger_number"]
    # Another tenant's partner is one this tenant does not have; another currency is refused.
    refused = await _post(api, tenant, path, {**body, "partner_id": foreign})
    assert (refused.status_code, refused.json()["code"]) == (422, "unknown_partner")
    gbp = await _post(api, tenant, path, {**body, "currency": "GBP", "partner_id": partner})
    assert (gbp.status_code, gbp.json()["code"]) == (422, "partner_currency_mismatch")
    assert gbp.json()["errors"][0]["field"] == "partner_id"
    assert len((await _get(api, tenant, path)).json()["data"]) == 1
