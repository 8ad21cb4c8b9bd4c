"""Compliance review cases: opened with a transfer held `in_review`, decided by a person.

Approving resumes the transfer (`processing`, the worker picks it up); rejecting blocks it
and voids its hold, releasing the funds. The transfer's transition, its event, the case's
decision and the audit record are written in one transaction, then the ledger is told (a
rejection voids the hold; the worker voids it too if the process dies in between, because
a blocked transfer whose hold is still reserved is due work).
"""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Any, Literal

import asyncpg
import msgspec

from compliance.audit.chain import append as audit_append
from gateway.http.paging import KeysetQuery, Page, PageRequest, Position, positions
from gateway.infra.database.batch import BatchStatement

case_insert = BatchStatement(
    table="compliance_cases",
    row_type="compliance_cases_batch_row",
    columns=("id", "compliance_region", "tenant_id", "transfer_id", "score", "reasons"),
    types=("uuid", "text", "bigint", "uuid", "integer", "jsonb"),
    on_conflict="ON CONFLICT DO NOTHING",
)
cases_page_max = 100
note_length_max = 1_000


class CaseRow(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    compliance_region: str
    tenant_id: int
    transfer_id: uuid.UUID
    status: str
    score: int
    reasons: list[str]
    decided_by: str | None
    note: str | None
    created_at: datetime.datetime
    decided_at: datetime.datetime | None


_columns = ", ".join(CaseRow.__struct_fields__)


def _case(record: asyncpg.Record) -> CaseRow:
    values: dict[str, Any] = dict(record)
    values["reasons"] = json.loads(values["reasons"])
    return CaseRow(**values)


_case_pages = KeysetQuery(
    f"SELECT {_columns} FROM compliance_cases "  # noqa: S608 - fixed column list.
    "WHERE tenant_id = $1 AND ($2::text IS NULL OR status = $2)",
    kind=positions,
)


async def list_cases(
    pool: asyncpg.Pool, *, tenant_id: int, status: str | None, page: PageRequest[Position]
) -> Page[CaseRow]:
    """A page of the tenant's cases (only `status` ones if given), oldest first."""
    return await _case_pages.page(pool, page, tenant_id, status, row=_case)


async def get_case(
    pool: asyncpg.Pool, *, region: str, tenant_id: int, case_id: uuid.UUID
) -> CaseRow | None:
    record = await pool.fetchrow(
        f"SELECT {_columns} FROM compliance_cases "  # noqa: S608 - fixed column list.
        "WHERE compliance_region = $1 AND id = $2 AND tenant_id = $3",
        region,
        case_id,
        tenant_id,
    )
    return None if record is None else _case(record)


async def decide(
    pool: asyncpg.Pool,
    case: CaseRow,
    *,
    decision: Literal["approve", "reject"],
    actor: str,
    note: str,
    event: tuple[uuid.UUID, str, dict[str, Any]],
) -> bool:
    """Close the case and move its transfer, with the event and the audit record, at once.

    False if the case was decided already or the transfer left `in_review` meanwhile.
    """
    to_status = "processing" if decision == "approve" else "blocked"
    async with pool.acquire() as connection, connection.transaction():
        closed = await connection.fetchval(
            """UPDATE compliance_cases SET status = $3, decided_by = $4, note = $5,
                      decided_at = now()
                WHERE compliance_region = $1 AND id = $2 AND status = 'open' RETURNING id""",
            case.compliance_region,
            case.id,
            "approved" if decision == "approve" else "rejected",
            actor,
            note[:note_length_max],
        )
        moved = await connection.fetchval(
            """UPDATE transfers SET status = $3, next_attempt_at = now(), updated_at = now()
                WHERE compliance_region = $1 AND id = $2 AND status = 'in_review' RETURNING id""",
            case.compliance_region,
            case.transfer_id,
            to_status,
        )
        if closed is None or moved is None:
            raise _AlreadyDecided
        event_id, event_type, payload = event
        await connection.execute(
            """INSERT INTO events (id, tenant_id, type, object_id, payload)
               VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
            event_id,
            case.tenant_id,
            event_type,
            case.transfer_id,
            json.dumps(payload, default=str),
        )
        await audit_append(
            connection,
            actor=actor,
            action=f"compliance.case.{decision}",
            target=f"case:{case.id}",
            details={
                "transfer_id": str(case.transfer_id),
                "note": note,
                "score": case.score,
                "reasons": case.reasons,
            },
        )
    return True


class _AlreadyDecided(Exception):
    """Rolls the decision's transaction back."""


async def decide_once(
    pool: asyncpg.Pool,
    case: CaseRow,
    *,
    decision: Literal["approve", "reject"],
    actor: str,
    note: str,
    event: tuple[uuid.UUID, str, dict[str, Any]],
) -> bool:
    try:
        return await decide(pool, case, decision=decision, actor=actor, note=note, event=event)
    except _AlreadyDecided:
        return False
