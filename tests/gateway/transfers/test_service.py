"""The audit record of a transfer's compliance decision: its details, encoded once per
(tenant, score, reasons) and then remembered, are exactly what the generic normalisation of
`compliance.audit.outbox.outbox_row` gives, for any decision; the record names the transfer and
the outcome; and the memo is bounded.

A retried transfer (its payout reserved by an earlier attempt) is recorded in a transaction
of its own, against real Postgres: with nothing there it writes its row, event and audit
record; over the earlier attempt's row it answers with that row as it stands and writes
nothing; over the reconciler's `abandoned` tombstone it is refused with
`transfer_abandoned` and writes nothing.

Through the gateway's ASGI app in this process (real Postgres, Redis and the embedded
ledger): a transfer whose rows find every pooled connection busy beyond the writer's wait
is answered 503 with Retry-After, and gives its hold, count and quote back at once."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from compliance.audit.outbox import outbox_row
from compliance.decisions import Decision
from gateway.http.ratelimit import Principal
from gateway.infra.database.batch import BatchWriter
from gateway.jobs import reconciler
from gateway.jobs.worker import reconciliation
from gateway.runtime import Runtime
from gateway.transfers import service, wire
from ledger.errors import ReservationReleased
from ledger.payouts import Payout
from ledger.transfers import new_object_id
from loadtest.bench_gateway import provision_unthrottled_tenant
from loadtest.provisioning import recipients
from tests import redis_server
from tests.fx.test_quotes import _quote as quote_for
from tests.postgres import in_process_app, migrated_runtime

reasons = st.lists(
    st.sampled_from(["amount_for_tier", "new_recipient", "velocity_high", "corridor"]),
    max_size=4,
    unique=True,
).map(tuple)


@given(
    tenant_id=st.integers(min_value=1, max_value=(1 << 63) - 1),
    score=st.integers(min_value=0, max_value=100),
    decision_reasons=reasons,
    outcome=st.sampled_from(["approve", "review"]),
)
def test_a_decision_record_matches_the_generic_one(
    tenant_id: int, score: int, decision_reasons: tuple[str, ...], outcome: str
) -> None:
    transfer_id = uuid.uuid4()
    decision = Decision(outcome=outcome, score=score, reasons=decision_reasons)  # type: ignore[arg-type]
    expected = outbox_row(
        record_id=service.event_id(transfer_id, "audit.compliance"),
        actor="compliance",
        action=f"compliance.{outcome}",
        target=f"transfer:{transfer_id}",
        details={"tenant_id": tenant_id, "score": score, "reasons": decision_reasons},
    )
    # Twice: the second answer comes from the memo and must not differ.
    for _ in range(2):
        assert service._decision_record(transfer_id, tenant_id, decision) == expected


def test_the_remembered_details_are_bounded() -> None:
    service._decision_details.cache_clear()
    for tenant_id in range(1, service.decision_details_cached_max + 50):
        service._decision_details(tenant_id, 10, ("corridor",))
    info = service._decision_details.cache_info()
    assert info.currsize == service.decision_details_cached_max


principal = Principal(tenant_id=1, role="admin", key_id=1, compliance_region="EU", status="active")


async def _record_retried(services: Runtime, transfer_id: int) -> wire.Transfer:
    return await services.transfers._record(
        principal,
        transfer_id=transfer_id,
        quote=quote_for(tenant_id=principal.tenant_id),
        recipient_id=new_object_id(),
        reference="retried",
        rail="bi_fast",
        decision=Decision(outcome="approve", score=3, reasons=()),
        retried=True,
    )


async def _rows(services: Runtime, transfer_id: int) -> tuple[list[str], int, int]:
    """The statuses under the id, its events, and its audit records."""
    transfer = uuid.UUID(int=transfer_id)
    statuses = [
        row["status"]
        for row in await services.pool.fetch("SELECT status FROM transfers WHERE id = $1", transfer)
    ]
    events = await services.pool.fetchval(
        "SELECT count(*) FROM events WHERE object_id = $1", transfer
    )
    audits = await services.pool.fetchval(
        "SELECT count(*) FROM audit_outbox WHERE target = $1", f"transfer:{transfer}"
    )
    return statuses, int(events), int(audits)


async def test_a_retried_transfer_is_recorded_once_and_never_over_a_tombstone(
    empty_database: str, tmp_path: Path
) -> None:
    services = await migrated_runtime(empty_database, tmp_path, {})
    try:
        fresh, earlier, abandoned = new_object_id(), new_object_id(), new_object_id()
        view = await _record_retried(services, fresh)
        assert await _rows(services, fresh) == (["processing"], 1, 1)
        await _record_retried(services, earlier)
        await services.pool.execute(
            "UPDATE transfers SET status = 'submitted' WHERE id = $1", uuid.UUID(int=earlier)
        )
        again = await _record_retried(services, earlier)
        assert again.status == "submitted"
        assert await _rows(services, earlier) == (["submitted"], 1, 1)
        tombstoned = Payout(
            payout_id=abandoned,
            tenant_id=principal.tenant_id,
            source_currency="EUR",
            source_amount_minor=1,
            fee_minor=0,
            target_currency="IDR",
            target_amount_minor=1,
        )
        assert await reconciler._abandon(reconciliation(services), tombstoned, region="EU")
        with pytest.raises(ReservationReleased):
            await _record_retried(services, abandoned)
        assert await _rows(services, abandoned) == (["abandoned"], 0, 0)
        assert view.status == "processing"
    finally:
        await services.close()


shed_redis_url = redis_server.redis_url(8)  # This test's own database, emptied around it.


async def test_a_transfer_shed_for_want_of_a_connection_answers_503_and_keeps_nothing(
    empty_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = in_process_app(empty_database, tmp_path, monkeypatch, redis_url=shed_redis_url)
    async with running as (app, client):
        await _shed_then_paid(app.state.runtime, client)


async def _shed_then_paid(services: Runtime, client: httpx.AsyncClient) -> None:
    key = await provision_unthrottled_tenant(client, deposits={"EUR": 1_000_000})
    headers = {"Authorization": f"Bearer {key}"}
    quote = await client.post(
        "/v1/quotes",
        headers=headers,
        json={"source_currency": "EUR", "target_currency": "EUR", "source_amount": 10_000},
    )
    recipient = await client.post("/v1/recipients", headers=headers, json=recipients["EUR"])
    body = {
        "quote_id": quote.json()["id"],
        "recipient_id": recipient.json()["id"],
        "reference": "shed",
    }
    services.writer = BatchWriter(services.pool, acquire_timeout_limit_seconds=0.2)
    held = [await services.pool.acquire() for _ in range(services.pool.get_max_size())]
    try:
        shed = await client.post("/v1/transfers", headers=headers, json=body)
    finally:
        for connection in held:
            await services.pool.release(connection)
    assert shed.status_code == 503, shed.text
    assert shed.json()["code"] == "dependency_unavailable"
    assert shed.headers["retry-after"] == "1"
    balances = (await client.get("/v1/balances", headers=headers)).json()["data"]
    (eur,) = [balance for balance in balances if balance["currency"] == "EUR"]
    assert (eur["available"], eur["pending"]) == (1_000_000, 0)
    paid = await client.post("/v1/transfers", headers=headers, json=body)
    assert paid.status_code == 201, paid.text
