"""Deciding review cases: approving resumes the transfer, rejecting blocks it and releases
its funds. Both write the transfer's event and an audit record in the same transaction as
the decision, and a case is decided once."""

from __future__ import annotations

import uuid
from typing import Literal

import asyncpg

from compliance.cases import wire
from compliance.cases.errors import CaseAlreadyDecided, CaseTransferMissing
from compliance.cases.records import CaseRow, decide_once, get_case
from gateway.http.ids import encode_id
from gateway.http.ratelimit import Principal
from gateway.transfers.records import get_transfer
from gateway.transfers.service import event_id, event_payload, payout_of
from ledger.payouts import Payouts
from ledger.service import Ledger


class Cases:
    """Decisions on the review queue."""

    def __init__(self, *, pool: asyncpg.Pool, ledger: Ledger) -> None:
        self._pool = pool
        self._payouts = Payouts(ledger)

    async def case(self, principal: Principal, case_id: int) -> CaseRow | None:
        """The tenant's case; None if it has none with this id."""
        return await get_case(
            self._pool,
            region=principal.compliance_region,
            tenant_id=principal.tenant_id,
            case_id=uuid.UUID(int=case_id),
        )

    async def decide(
        self, case: CaseRow, *, decision: Literal["approve", "reject"], actor: str, note: str
    ) -> CaseRow | None:
        """Approve or reject the case, once; the case as decided (None if it vanished)."""
        transfer = await get_transfer(
            self._pool,
            region=case.compliance_region,
            tenant_id=case.tenant_id,
            transfer_id=case.transfer_id,
        )
        if transfer is None:
            raise CaseTransferMissing(f"no transfer for case {encode_id('case', case.id.int)}")
        status = "processing" if decision == "approve" else "blocked"
        event = (
            event_id(transfer.id, f"transfer.{status}", 1),
            f"transfer.{status}",
            event_payload(transfer, status),
        )
        if not await decide_once(
            self._pool, case, decision=decision, actor=actor, note=note, event=event
        ):
            raise CaseAlreadyDecided("this case was decided already")
        if decision == "reject":
            await self._payouts.abort(payout_of(transfer))
        return await get_case(
            self._pool, region=case.compliance_region, tenant_id=case.tenant_id, case_id=case.id
        )


def case_view(case: CaseRow) -> wire.Case:
    return wire.Case(
        id=encode_id("case", case.id.int),
        transfer_id=encode_id("tr", case.transfer_id.int),
        status=case.status,
        score=case.score,
        reasons=case.reasons,
        decided_by=case.decided_by,
        note=case.note,
        created_at=case.created_at,
        decided_at=case.decided_at,
    )
