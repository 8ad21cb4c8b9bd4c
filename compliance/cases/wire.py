"""The JSON shapes of the review queue: a case, a page of cases, and a decision."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta


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
