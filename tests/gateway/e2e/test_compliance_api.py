"""Compliance end to end: a sanctioned recipient is refused at creation, and a payout to a
payee listed after its creation (a list loaded into the running system) is blocked and
moves nothing; a
near match waits `in_review` with its funds held until a person decides (approve resumes
and completes it, reject blocks it and releases the funds); daily limits in USD refuse
payouts beyond the tier; frozen tenants and recipients move no money; and every decision
(automated approvals included) and freeze lands in the audit trail, which still verifies."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from gateway.http.ids import decode_id
from tests.gateway.e2e.conftest import Deployment, bearer, kovra, repository
from tests.gateway.e2e.test_transfers_api import Payer, liquidity

# The worker drains the audit outbox every half second when idle.
audit_wait_seconds = 10.0
# Every process re-reads the stored lists each second (KOVRA_SANCTIONS_REFRESH_SECONDS=1).
list_refresh_wait_seconds = 3.0


@pytest.fixture(scope="module")
def funded(deployment: Deployment) -> Deployment:
    deployment.fund_liquidity(liquidity)
    return deployment


def _recipient(payer: Payer, name: str) -> str:
    created = _create_recipient(payer, name)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _pay(payer: Payer, recipient: str, amount: int = 10_000) -> httpx.Response:
    quote = payer.quote("EUR", "EUR", amount)
    return payer.post(
        "/v1/transfers",
        {"quote_id": quote["id"], "recipient_id": recipient, "reference": "INV-compliance"},
    )


def _compliance_key(deployment: Deployment, tenant_id: int) -> tuple[int, str]:
    """A compliance officer's key (id, secret) for the tenant's queue, issued by the
    platform."""
    issued = httpx.post(
        f"{deployment.base_url}/admin/v1/tenants/{tenant_id}/api-keys",
        headers=deployment.admin(),
        json={"role": "compliance"},
        timeout=30,
    )
    assert issued.status_code == 201, issued.text
    return int(issued.json()["id"]), str(issued.json()["secret"])


def _as(deployment: Deployment, key: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{deployment.base_url}{path}", json=body, headers=bearer(key), timeout=30)


def _open_case(payer: Payer, transfer_id: str) -> dict[str, Any]:
    cases = payer.get("/v1/compliance/cases").json()["data"]
    (case,) = [c for c in cases if c["transfer_id"] == transfer_id]
    return case  # type: ignore[no-any-return]


def _create_recipient(payer: Payer, name: str) -> httpx.Response:
    return payer.post(
        "/v1/recipients",
        {
            "name": name,
            "country": "DE",
            "currency": "EUR",
            "bank_details": {"iban": "DE89370400440532013000", "bic": "COBADEFFXXX"},
        },
    )


def test_a_sanctioned_recipient_is_refused_at_creation(funded: Deployment) -> None:
    payer = Payer(funded)
    refused = _create_recipient(payer, "SANCTIONOV, Ivan Petrovich")
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "compliance_blocked"
    blocks = asyncio.run(
        _fetch_values(
            funded.database_url,
            "SELECT details->>'reasons' FROM audit_records "
            "WHERE action = 'compliance.block' AND target LIKE 'recipient:%'",
        )
    )
    assert any("KOVRA TEST LIST" in str(reasons) for reasons in blocks), blocks


async def _fetch_values(database_url: str, query: str) -> list[object]:
    connection = await asyncpg.connect(database_url)
    try:
        return [row[0] for row in await connection.fetch(query)]
    finally:
        await connection.close()


def test_a_payee_listed_after_creation_is_blocked_at_transfer_time(
    funded: Deployment, tmp_path: Path
) -> None:
    payer = Payer(funded)
    recipient = _recipient(payer, "Quillmark Shipping Holdings")
    listed = tmp_path / "late-list.csv"
    listed.write_text("name,aliases,country,list\nQuillmark Shipping Holdings,,DE,LATE LIST\n")
    loaded = subprocess.run(
        [*kovra, "sanctions", "load", str(listed), "--format", "csv"],
        check=False,
        env=funded.environment,
        cwd=repository,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    time.sleep(list_refresh_wait_seconds)
    before = payer.balance("EUR")
    blocked = _pay(payer, recipient)
    assert blocked.status_code == 403, blocked.text
    assert blocked.json()["code"] == "compliance_blocked"
    assert payer.balance("EUR") == before


def test_a_near_match_waits_for_review(funded: Deployment) -> None:
    payer = Payer(funded)
    recipient = _recipient(payer, "Goldfinch Metals")  # Scores 88: review, not block.
    approved = _pay(payer, recipient)
    assert approved.status_code == 201, approved.text
    transfer = approved.json()
    assert transfer["status"] == "in_review"
    time.sleep(0.5)  # The worker must leave it alone.
    assert payer.get(f"/v1/transfers/{transfer['id']}").json()["status"] == "in_review"
    assert payer.balance("EUR")["pending"] == 10_000
    case = _open_case(payer, transfer["id"])
    assert case["status"] == "open"
    unknown = payer.get("/v1/compliance/cases?status=pending")
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "status"
    # The queue pages like every list: a full page names where the next one starts.
    first_page = payer.get("/v1/compliance/cases?status=all&limit=1").json()
    assert first_page["next_cursor"] is not None
    rest = payer.get(f"/v1/compliance/cases?status=all&cursor={first_page['next_cursor']}")
    paged = [c["id"] for c in first_page["data"] + rest.json()["data"]]
    assert case["id"] in paged
    assert len(paged) == len(set(paged))
    assert payer.get("/v1/compliance/cases?cursor=nonsense").status_code == 422
    assert any(reason.startswith("sanctions_match:") for reason in case["reasons"])
    approve = {"decision": "approve", "note": "the metals dealer is a namesake"}
    decision_path = f"/v1/compliance/cases/{case['id']}/decision"
    # Separation of duties: the tenant's own admin key cannot clear its payout.
    assert payer.post(decision_path, approve).status_code == 403
    officer_id, officer = _compliance_key(funded, payer.tenant_id)
    assert _as(funded, officer, "/v1/deposits", {"currency": "EUR", "amount": 1}).status_code == 403
    decided = _as(funded, officer, decision_path, approve)
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "approved"
    assert decided.json()["decided_by"] == f"tenant:{payer.tenant_id}:key:{officer_id}"
    assert payer.settle(transfer["id"])["status"] == "completed"
    again = _as(funded, officer, decision_path, {"decision": "reject", "note": "too late"})
    assert again.json()["code"] == "case_already_decided"

    before = payer.balance("EUR")
    rejected = _pay(payer, recipient).json()
    case = _open_case(payer, rejected["id"])
    _as(
        funded,
        officer,
        f"/v1/compliance/cases/{case['id']}/decision",
        {"decision": "reject", "note": "confirmed match"},
    ).raise_for_status()
    assert payer.settle(rejected["id"])["status"] == "blocked"
    assert payer.balance("EUR") == before


def test_daily_limits_in_usd(funded: Deployment) -> None:
    payer = Payer.__new__(Payer)
    payer.deployment = funded
    payer.tenant_id, payer.key = funded.tenant(tier="starter")  # USD 10,000 a day.
    payer.recipients = {}
    funded.deposit(payer.key, "EUR", 5_000_000)
    recipient = payer.recipient("EUR")
    first = _pay(payer, recipient, amount=800_000)  # About USD 8,700.
    assert first.status_code == 201, first.text
    second = _pay(payer, recipient, amount=200_000)
    assert second.status_code == 422
    assert second.json()["code"] == "daily_limit_exceeded"
    small = _pay(payer, recipient, amount=50_000)
    assert small.status_code == 201, small.text


def test_freezes_stop_new_transfers(funded: Deployment) -> None:
    payer = Payer(funded)
    recipient = _recipient(payer, "Harmless Supplier AG")
    admin = funded.admin()
    tenant_url = f"{funded.base_url}/admin/v1/tenants/{payer.tenant_id}"
    frozen = httpx.put(
        f"{tenant_url}/recipients/{recipient}/status", headers=admin, json={"status": "frozen"}
    )
    assert frozen.status_code == 200, frozen.text
    assert _pay(payer, recipient).json()["code"] == "recipient_frozen"
    httpx.put(
        f"{tenant_url}/recipients/{recipient}/status", headers=admin, json={"status": "active"}
    ).raise_for_status()
    assert _pay(payer, recipient).status_code == 201
    httpx.put(f"{tenant_url}/status", headers=admin, json={"status": "frozen"}).raise_for_status()
    refused = _pay(payer, payer.recipient("EUR"))
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "tenant_frozen"
    httpx.put(f"{tenant_url}/status", headers=admin, json={"status": "active"}).raise_for_status()
    assert _pay(payer, recipient).status_code == 201
    actions = asyncio.run(
        _fetch_values(
            funded.database_url,
            "SELECT action FROM audit_records WHERE action LIKE 'recipient.%' "
            "OR action LIKE 'tenant.frozen' OR action LIKE 'tenant.active' ORDER BY seq",
        )
    )
    assert actions[-4:] == [
        "recipient.frozen",
        "recipient.active",
        "tenant.frozen",
        "tenant.active",
    ]


async def _decisions_about(database_url: str, target: str) -> list[str]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT action FROM audit_records WHERE target = $1 ORDER BY seq", target
        )
        return [row["action"] for row in rows]
    finally:
        await connection.close()


def test_automated_approvals_reach_the_audit_trail(funded: Deployment) -> None:
    payer = Payer(funded)
    approved = _pay(payer, payer.recipient("EUR"))
    assert approved.status_code == 201, approved.text
    assert approved.json()["status"] == "processing"
    target = f"transfer:{uuid.UUID(int=decode_id('tr', approved.json()['id']))}"
    deadline = time.monotonic() + audit_wait_seconds
    while not (actions := asyncio.run(_decisions_about(funded.database_url, target))):
        assert time.monotonic() < deadline, f"no audit record of {target}"
        time.sleep(0.1)
    assert actions == ["compliance.approve"]


def test_the_audit_trail_verifies(funded: Deployment) -> None:
    result = subprocess.run(
        [*kovra, "audit", "verify"],
        check=False,
        env=funded.environment,
        cwd=repository,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"ok":true' in result.stdout.replace(" ", "")


def _kovra(deployment: Deployment, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*kovra, *arguments],
        check=False,
        env=deployment.environment,
        cwd=repository,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_operators_load_lists_and_freeze_from_the_cli(funded: Deployment) -> None:
    ofac = repository / "tests" / "compliance" / "sanctions" / "fixtures" / "ofac_sample"
    loaded = _kovra(funded, "sanctions", "load", str(ofac), "--format", "ofac")
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    assert loaded.stdout.startswith("loaded ")
    wrong = _kovra(funded, "sanctions", "load", str(ofac / "sdn.csv"), "--format", "ofac")
    assert wrong.returncode == 2

    payer = Payer(funded)
    recipient = payer.recipient("EUR")
    frozen = _kovra(funded, "freeze", "recipient", recipient, "--tenant", str(payer.tenant_id))
    assert frozen.returncode == 0, frozen.stderr
    assert _pay(payer, recipient).json()["code"] == "recipient_frozen"
    thawed = _kovra(
        funded, "freeze", "recipient", recipient, "--tenant", str(payer.tenant_id), "--unfreeze"
    )
    assert thawed.returncode == 0, thawed.stderr
    assert _pay(payer, recipient).status_code == 201
    assert _kovra(funded, "freeze", "tenant", str(payer.tenant_id)).returncode == 0
    assert _pay(payer, recipient).json()["code"] == "tenant_frozen"
    assert _kovra(funded, "freeze", "tenant", "999999999", "--unfreeze").returncode == 1


def test_audit_export_and_tamper_detection_from_the_cli(funded: Deployment, tmp_path: Path) -> None:
    output = tmp_path / "audit.jsonl"
    exported = _kovra(
        funded,
        "audit",
        "export",
        "--from",
        "2000-01-01T00:00:00+00:00",
        "--to",
        "2100-01-01T00:00:00+00:00",
        "--output",
        str(output),
    )
    assert exported.returncode == 0, exported.stderr
    summary = json.loads(exported.stdout)
    lines = output.read_bytes().splitlines()
    assert summary["row_count"] == len(lines) > 0
    assert summary["sha256"] == hashlib.sha256(output.read_bytes()).hexdigest()
    checksum = Path(summary["checksum_path"]).read_text()
    assert checksum.split()[0] == summary["sha256"]

    # As the table's owner, past the trigger: rewrite one record, and verify names it.
    target_seq = summary["first_seq"] + 1
    original = asyncio.run(_owner_rewrite(funded.database_url, target_seq, '{"forged": true}'))
    try:
        broken = _kovra(funded, "audit", "verify")
        assert broken.returncode == 1, broken.stdout + broken.stderr
        result = json.loads(broken.stdout)
        assert (result["ok"], result["broken_seq"]) == (False, target_seq)
    finally:
        asyncio.run(_owner_rewrite(funded.database_url, target_seq, original))
    assert _kovra(funded, "audit", "verify").returncode == 0


async def _owner_rewrite(database_url: str, seq: int, details: str) -> str:
    """Replace one record's details with the guard trigger disabled; return the old ones."""
    connection = await asyncpg.connect(database_url)
    try:
        async with connection.transaction():
            old = await connection.fetchval(
                "SELECT details::text FROM audit_records WHERE seq = $1", seq
            )
            await connection.execute("ALTER TABLE audit_records DISABLE TRIGGER USER")
            await connection.execute(
                "UPDATE audit_records SET details = $2::jsonb WHERE seq = $1", seq, details
            )
            await connection.execute("ALTER TABLE audit_records ENABLE TRIGGER USER")
        return str(old)
    finally:
        await connection.close()
