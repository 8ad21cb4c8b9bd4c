"""The JSON shapes of the admin plane's operations exceptions."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from gateway.http.ids import row_id_max
from gateway.http.wire import IssuedCurrencyCode, Timestamp
from gateway.operations.records import resolution_note_length_max

# Not blank: at least one character besides NUL and ASCII whitespace, spelled out because
# `\S` means less in Python's `re` (which counts \x1c-\x1f and \x85 as space) than in the
# JSON Schema dialect the document is read in, and the two must agree.
ResolutionNote = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=resolution_note_length_max,
        pattern=r"^[^\x00]*[^\x00\t\n\x0b\x0c\r ][^\x00]*$",
    ),
]
TenantId = Annotated[int, Meta(ge=1, le=row_id_max)]


class OperationsException(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: str = "operations_exception"
    kind: str
    status: Literal["open", "resolved"]
    tenant_id: int | None
    currency: IssuedCurrencyCode | None
    amount: int | None
    object_type: str | None
    object_id: str | None
    details: dict[str, Any]
    created_at: Timestamp
    resolved_at: Timestamp | None
    resolved_by: str | None
    resolution_note: str | None


class OperationsExceptionPage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[OperationsException]
    next_cursor: str | None


class ExceptionResolve(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How a person settled the exception, in a note; for an unmatched statement entry, the
    tenant whose wallet its money (held in suspense) is released to, if any."""

    note: ResolutionNote
    tenant_id: TenantId | None = None
