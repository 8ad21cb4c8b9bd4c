"""Production funding end to end, through the app in this process over real Postgres, Redis
and the embedded ledger:

- a tenant's funding instructions show the settlement account of the currency and the
  tenant's own reference; a currency without a settlement account has none (422);
- a camt.054 credit carrying the tenant's reference credits its wallet exactly once: the
  same file again, and then the camt.053 repeating the entry, credit nothing more, and the
  tenant receives one `funding.credited` event;
- a credit whose reference has a typo, or that names no tenant, credits no tenant: its money
  lands in suspense with one `unmatched_statement_entry` exception; releasing it to a tenant
  credits that wallet once, and a second release (to anyone) moves nothing;
- debit entries, and credits of known collections, move nothing;
- a statement for another account, an invalid file and a DOCTYPE are refused and store
  nothing; the admin routes need the admin token;
- a crash between recording the entries and moving the money is completed by ingesting
  the file again.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from gateway.funding.accounts import sandbox_accounts
from gateway.funding.references import funding_reference, printed
from gateway.http.ids import decode_id
from ledger.accounts import AccountType, platform_account_id
from ledger.funding import BankFunding
from tests import redis_server
from tests.gateway.api_matrix import Api, Tenant, admin, api_for_a_module
from tests.rails.statements.camt_files import EntrySpec, FileSpec, camt

on_the_modules_loop = pytest.mark.asyncio(loop_scope="module")
redis_url = redis_server.redis_url(1)
xml = {"Content-Type": "application/xml"}
eur = 978


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    async with api_for_a_module(tmp_path_factory.mktemp("funding"), redis_url=redis_url) as api:
        yield api


async def ingest(api: Api, spec: FileSpec, *, expected: int = 200) -> Any:
    answer = await api.client.post(
        "/admin/v1/statements", content=camt(spec), headers={**admin, **xml}
    )
    assert answer.status_code == expected, answer.text
    return answer.json()


async def available(api: Api, tenant: Tenant, currency: str = "EUR") -> int:
    answer = await api.client.get("/v1/balances", headers=tenant.headers("read_only"))
    assert answer.status_code == 200, answer.text
    return next(int(b["available"]) for b in answer.json()["data"] if b["currency"] == currency)


async def suspense(api: Api) -> int:
    (account,) = await api.app.state.runtime.ledger_client.lookup_accounts(
        [platform_account_id(AccountType.SUSPENSE, eur)]
    )
    return int(account.credits_posted) - int(account.debits_posted)


async def funding_events(api: Api, tenant: Tenant) -> list[dict[str, Any]]:
    answer = await api.client.get(
        "/v1/events", params={"type": "funding.credited"}, headers=tenant.headers("read_only")
    )
    assert answer.status_code == 200, answer.text
    return list(answer.json()["data"])


async def exceptions_of(api: Api, entry_id: str) -> list[dict[str, Any]]:
    answer = await api.client.get(
        "/admin/v1/exceptions",
        params={"kind": "unmatched_statement_entry", "limit": "100"},
        headers=admin,
    )
    assert answer.status_code == 200, answer.text
    return [e for e in answer.json()["data"] if e["object_id"] == entry_id]


@on_the_modules_loop
async def test_funding_instructions_show_the_account_and_the_tenants_reference(api: Api) -> None:
    tenant = await api.tenant("Instructions GmbH")
    answer = await api.client.get(
        "/v1/funding-instructions", params={"currency": "EUR"}, headers=tenant.headers("read_only")
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["bank_details"] == {"iban": "DE89370400440532013000", "bic": "COBADEFFXXX"}
    assert body["reference"] == funding_reference(tenant.tenant_id)
    assert body["reference_printed"] == printed(body["reference"])
    gbp = await api.client.get(
        "/v1/funding-instructions", params={"currency": "GBP"}, headers=tenant.headers("admin")
    )
    assert gbp.json()["bank_details"] == {"sort_code": "089999", "account_number": "66374958"}
    api.app.state.runtime.funding._accounts = {}  # As in production without configuration.
    try:
        refused = await api.client.get(
            "/v1/funding-instructions", params={"currency": "EUR"}, headers=tenant.headers("admin")
        )
    finally:
        api.app.state.runtime.funding._accounts = {
            a.currency: a for a in sandbox_accounts(api.app.state.runtime.ledger.currencies)
        }
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "no_funding_instructions"
    assert refused.json()["errors"][0]["field"] == "currency"


@on_the_modules_loop
async def test_a_matched_credit_credits_once_across_files_and_their_statement(api: Api) -> None:
    tenant = await api.tenant("Matched GmbH")
    other = await api.tenant("Bystander GmbH")
    before, other_before = await available(api, tenant), await available(api, other)
    reference = printed(funding_reference(tenant.tenant_id))
    credit = EntrySpec(
        amount="250.00", servicer_reference="ASR-MATCHED-1", unstructured=(f"top up {reference}",)
    )
    notification = FileSpec(kind="camt.054", message_id="N-1", report_id="N-1", entries=(credit,))
    first = await ingest(api, notification)
    assert (first["entries"], first["credited"], first["repeated"]) == (1, 1, 0)
    assert await available(api, tenant) == before + 25_000
    again = await ingest(api, notification)
    assert (again["credited"], again["repeated"]) == (1, 1)
    assert again["statements"][0]["id"] == first["statements"][0]["id"]
    statement = FileSpec(message_id="S-1", report_id="S-1", entries=(credit,))
    repeated = await ingest(api, statement)
    assert repeated["repeated"] == 1
    assert await available(api, tenant) == before + 25_000
    assert await available(api, other) == other_before
    (event,) = await funding_events(api, tenant)
    assert (event["data"]["amount"], event["data"]["currency"]) == (25_000, "EUR")
    detail = await api.client.get(
        f"/admin/v1/statements/{repeated['statements'][0]['id']}", headers=admin
    )
    assert detail.status_code == 200, detail.text
    (line,) = detail.json()["entries"]
    assert line["entry"]["status"] == "credited"
    assert line["entry"]["statement_id"] == first["statements"][0]["id"]
    assert line["entry"]["tenant_id"] == tenant.tenant_id


@on_the_modules_loop
async def test_a_typo_or_no_reference_lands_in_suspense_and_is_released_once(api: Api) -> None:
    tenant = await api.tenant("Typo GmbH")
    before, suspense_before = await available(api, tenant), await suspense(api)
    correct = funding_reference(tenant.tenant_id)
    last = correct[-1]
    typo = correct[:-1] + ("0" if last != "0" else "1")
    entries = (
        EntrySpec(amount="40.00", servicer_reference="ASR-TYPO-1", creditor_reference=typo),
        EntrySpec(amount="2.50", servicer_reference="ASR-NONE-1", unstructured=("thanks",)),
    )
    ingested = await ingest(
        api, FileSpec(kind="camt.054", message_id="N-2", report_id="N-2", entries=entries)
    )
    assert (ingested["credited"], ingested["suspense"]) == (0, 2)
    assert await available(api, tenant) == before
    assert await suspense(api) == suspense_before + 4_250
    detail = await api.client.get(
        f"/admin/v1/statements/{ingested['statements'][0]['id']}", headers=admin
    )
    typo_line, none_line = detail.json()["entries"]
    assert typo_line["entry"]["suspense_reason"] == "unreadable_reference"
    assert none_line["entry"]["suspense_reason"] == "no_reference"
    (exception,) = await exceptions_of(api, typo_line["entry"]["id"])
    assert (exception["status"], exception["amount"]) == ("open", 4_000)
    await ingest(api, FileSpec(kind="camt.054", message_id="N-2", report_id="N-2", entries=entries))
    assert len(await exceptions_of(api, typo_line["entry"]["id"])) == 1
    resolve = f"/admin/v1/exceptions/{exception['id']}/resolve"
    body = {"note": "payer mistyped the reference", "tenant_id": tenant.tenant_id}
    unauthorised = await api.client.post(resolve, json=body)
    assert unauthorised.status_code == 401
    released = await api.client.post(resolve, json=body, headers=admin)
    assert released.status_code == 200, released.text
    assert released.json()["status"] == "resolved"
    assert released.json()["resolved_by"] == "admin-token"
    assert await available(api, tenant) == before + 4_000
    assert await suspense(api) == suspense_before + 250
    again = await api.client.post(resolve, json=body, headers=admin)
    assert again.status_code == 409, again.text
    assert await available(api, tenant) == before + 4_000
    assert len(await funding_events(api, tenant)) == 1
    audited = await api.pool.fetchval(
        "SELECT count(*) FROM audit_records WHERE action = 'exception.resolve' AND target = $1",
        f"exception:{uuid.UUID(int=decode_id('exc', exception['id']))}",
    )
    assert audited == 1


@on_the_modules_loop
async def test_debits_and_collections_move_nothing(api: Api) -> None:
    tenant = await api.tenant("Debits GmbH")
    before, suspense_before = await available(api, tenant), await suspense(api)
    reference = funding_reference(tenant.tenant_id)
    entries = (
        EntrySpec(
            amount="10.00",
            direction="DBIT",
            servicer_reference="ASR-DEBIT-1",
            creditor_reference=reference,
        ),
    )
    ingested = await ingest(
        api, FileSpec(kind="camt.054", message_id="N-3", report_id="N-3", entries=entries)
    )
    assert (ingested["debit"], ingested["credited"], ingested["suspense"]) == (1, 0, 0)
    # A collection's row as the collections domain writes it (migration 0019): its credit
    # came by the provider's notification, so the bank's entry for it moves nothing.
    await api.pool.execute(
        """INSERT INTO collections (compliance_region, id, tenant_id, mandate_id, provider,
               currency, amount_minor, reference, end_to_end_id, collection_date)
           VALUES ('EU', $1, $2, $3, 'sepa_dd', 'EUR', 3000, 'rent', 'E2E-COLLECTED-1',
               current_date)""",
        uuid.uuid4(),
        tenant.tenant_id,
        uuid.uuid4(),
    )
    collected = EntrySpec(
        amount="30.00", servicer_reference="ASR-COLL-1", end_to_end_id="E2E-COLLECTED-1",
        creditor_reference=reference,
    )  # fmt: skip
    ingested = await ingest(
        api, FileSpec(kind="camt.054", message_id="N-4", report_id="N-4", entries=(collected,))
    )
    assert (ingested["collection"], ingested["credited"]) == (1, 0)
    assert await available(api, tenant) == before
    assert await suspense(api) == suspense_before


@on_the_modules_loop
async def test_foreign_invalid_and_hostile_files_are_refused_and_store_nothing(api: Api) -> None:
    count = "SELECT (SELECT count(*) FROM bank_statements) + (SELECT count(*) FROM bank_entries)"
    stored = await api.pool.fetchval(count)
    foreign = FileSpec(
        kind="camt.054",
        message_id="N-5",
        account="DE44500105175407324931",
        entries=(EntrySpec(amount="1"),),
    )
    refused = await ingest(api, foreign, expected=422)
    assert refused["code"] == "unknown_settlement_account"
    document = camt(
        FileSpec(kind="camt.054", message_id="N-6", entries=(EntrySpec(amount="1"),))
    ).decode()
    for hostile, code in (
        (document.replace("<MsgId>", "<MsgIdX>", 1), "invalid_statement"),
        (
            '<!DOCTYPE Document [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            + document.split("\n", 1)[1],
            "invalid_statement",
        ),
    ):
        answer = await api.client.post(
            "/admin/v1/statements", content=hostile.encode(), headers={**admin, **xml}
        )
        assert answer.status_code == 422, answer.text
        assert answer.json()["code"] == code
    unauthorised = await api.client.post(
        "/admin/v1/statements", content=document.encode(), headers=xml
    )
    assert unauthorised.status_code == 401
    assert await api.pool.fetchval(count) == stored


@on_the_modules_loop
async def test_a_crash_before_the_ledger_is_completed_by_ingesting_again(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = await api.tenant("Crash GmbH")
    before = await available(api, tenant)
    credit = EntrySpec(
        amount="7.00",
        servicer_reference="ASR-CRASH-1",
        creditor_reference=funding_reference(tenant.tenant_id),
    )
    spec = FileSpec(kind="camt.054", message_id="N-7", report_id="N-7", entries=(credit,))

    async def crash(self: BankFunding, entry_credits: object) -> None:
        raise RuntimeError("the process died here")

    with monkeypatch.context() as patched:
        patched.setattr(BankFunding, "credit", crash)
        died = await api.client.post(
            "/admin/v1/statements", content=camt(spec), headers={**admin, **xml}
        )
        assert died.status_code == 500
    assert await available(api, tenant) == before
    status = await api.pool.fetchval("SELECT status FROM bank_statements WHERE message_id = 'N-7'")
    assert status == "processing"
    completed = await ingest(api, spec)
    assert completed["credited"] == 1
    assert completed["statements"][0]["status"] == "processed"
    assert await available(api, tenant) == before + 700
    assert len(await funding_events(api, tenant)) == 1
