"""The review queue: compliance cases of the tenant (any key may list them), and decisions
on them, which only a `compliance` key (issued by the platform to its compliance officers,
never usable to move money) may make.

Approving resumes the transfer; rejecting blocks it and releases its funds. Both write the
transfer's event and an audit record in the same transaction as the decision.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery
from msgspec import Meta

from compliance.cases.records import CaseRow, cases_page_max, decide_once, get_case, list_cases
from gateway.http.ids import decode_id, encode_id
from gateway.http.paging import decode_cursor, encode_cursor, page_limit_or_422
from gateway.http.problems import FieldError, ProblemError
from gateway.http.requests import (
    decode_body,
    json_response,
    principal_of,
    request_body,
    services_of,
)
from gateway.transfers.records import get_transfer
from gateway.transfers.service import event_id, event_payload, payout_of
from ledger.payouts import Payouts

case_statuses = ("open", "approved", "rejected", "all")


class CaseDecision(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    decision: Literal["approve", "reject"]
    note: Annotated[str, Meta(min_length=1, max_length=1_000)]


class Case(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: str = "compliance_case"
    transfer_id: str
    status: str
    score: int
    reasons: list[str]
    decided_by: str | None
    note: str | None
    created_at: Any
    decided_at: Any


class CaseList(msgspec.Struct, frozen=True, kw_only=True):
    data: list[Case]
    next_cursor: str | None


def _view(case: CaseRow) -> Case:
    return Case(
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


@get("/v1/compliance/cases", summary="The review queue", tags=["compliance"])
async def list_cases_route(
    request: Request[Any, Any, Any],
    status: FromQuery[str] = "open",
    limit: FromQuery[int] = 50,
    cursor: FromQuery[str | None] = None,
) -> Response[bytes]:
    if status not in case_statuses:
        raise ProblemError(
            422,
            "validation_error",
            "status is not a case status",
            errors=[
                FieldError(field="status", message=f"must be one of {', '.join(case_statuses)}")
            ],
        )
    page_limit_or_422(limit, limit_max=cases_page_max)
    cases = await list_cases(
        services_of(request).pool,
        tenant_id=principal_of(request).tenant_id,
        status=None if status == "all" else status,
        limit=limit,
        after=decode_cursor(cursor),
    )
    last = cases[-1] if len(cases) == limit else None
    next_cursor = None if last is None else encode_cursor(last.created_at, last.id)
    return json_response(
        200, CaseList(data=[_view(case) for case in cases], next_cursor=next_cursor)
    )


@post(
    "/v1/compliance/cases/{case_id:str}/decision",
    summary="Approve or reject a case",
    tags=["compliance"],
)
async def decide_case(request: Request[Any, Any, Any], case_id: FromPath[str]) -> Response[bytes]:
    principal = principal_of(request)
    if principal.role != "compliance":
        # Separation of duties: a tenant never clears its own payouts.
        raise ProblemError(403, "forbidden", "deciding cases needs a compliance officer's key")
    body = decode_body(await request_body(request), CaseDecision)
    services = services_of(request)
    case = await get_case(
        services.pool,
        region=principal.compliance_region,
        tenant_id=principal.tenant_id,
        case_id=uuid.UUID(int=decode_id("case", case_id)),
    )
    if case is None:
        raise ProblemError(404, "not_found", f"no case {case_id[:64]}")
    transfer = await get_transfer(
        services.pool,
        region=case.compliance_region,
        tenant_id=case.tenant_id,
        transfer_id=case.transfer_id,
    )
    if transfer is None:
        raise ProblemError(404, "not_found", f"no transfer for case {case_id[:64]}")
    status = "processing" if body.decision == "approve" else "blocked"
    event = (
        event_id(transfer.id, f"transfer.{status}", 1),
        f"transfer.{status}",
        event_payload(transfer, status),
    )
    actor = f"tenant:{principal.tenant_id}:key:{principal.key_id}"
    if not await decide_once(
        services.pool, case, decision=body.decision, actor=actor, note=body.note, event=event
    ):
        raise ProblemError(409, "case_already_decided", "this case was decided already")
    if body.decision == "reject":
        await Payouts(services.ledger).abort(payout_of(transfer))
    decided = await get_case(
        services.pool, region=case.compliance_region, tenant_id=case.tenant_id, case_id=case.id
    )
    if decided is None:
        raise ProblemError(404, "not_found", f"no case {case_id[:64]}")
    return json_response(200, _view(decided))
