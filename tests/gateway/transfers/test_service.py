"""The audit record of a transfer's compliance decision: its details, encoded once per
(tenant, score, reasons) and then remembered, are exactly what the generic normalisation of
`gateway.audit_outbox.outbox_row` gives, for any decision; the record names the transfer and
the outcome; and the memo is bounded."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from compliance.decisions import Decision
from gateway.audit_outbox import outbox_row
from gateway.transfers import service

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
