"""Operations exceptions on the admin plane: listed, read, and resolved by a person with a
note, every resolution audited (`compliance.audit.chain`) before it is made.

Releasing an unmatched statement entry's money to a tenant is the funding domain's
(`gateway.funding.service.Funding.release`), which resolves the exception in the same
transaction as it records the release."""

from __future__ import annotations

import uuid

import asyncpg

from compliance.audit.chain import record_admin_action
from gateway.http.ids import encode_id
from gateway.http.paging import Page, PageRequest, Position, keyset_page
from gateway.operations import records, wire
from gateway.operations.errors import ExceptionAlreadyResolved, ExceptionUnknown

statuses = ("open", "resolved")
exceptions_page_max = 100
# The id prefix of the objects exceptions name, where the API has one.
_object_prefixes = {"bank_entry": "bke", "collection": "col", "mandate": "mdt"}


class Operations:
    def __init__(self, *, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def exceptions(
        self, *, status: str | None, kind: str | None, page: PageRequest[Position]
    ) -> Page[wire.OperationsException]:
        """Newest first."""
        rows = await records.page(
            self._pool, status=status, kind=kind, limit=page.limit, after=page.cursor
        )
        return keyset_page(rows, page, key=lambda row: (row.created_at, row.id)).map(exception_view)

    async def exception(self, exception_id: int) -> wire.OperationsException:
        row = await records.get(self._pool, uuid.UUID(int=exception_id))
        if row is None:
            raise ExceptionUnknown(f"no exception {encode_id('exc', exception_id)}")
        return exception_view(row)

    async def resolve(
        self, exception_id: int, *, note: str, actor: str
    ) -> wire.OperationsException:
        """Resolve an open exception with a note, audited first."""
        row = await records.get(self._pool, uuid.UUID(int=exception_id))
        if row is None:
            raise ExceptionUnknown(f"no exception {encode_id('exc', exception_id)}")
        if row.status != "open":
            raise ExceptionAlreadyResolved(
                f"exception {encode_id('exc', exception_id)} is resolved"
            )
        await record_admin_action(
            self._pool,
            actor=actor,
            action="exception.resolve",
            target=f"exception:{row.id}",
            details={"kind": row.kind, "note": note},
        )
        resolved = await records.resolve(self._pool, row.id, resolved_by=actor, note=note)
        if resolved is None:  # Another person resolved it meanwhile.
            raise ExceptionAlreadyResolved(
                f"exception {encode_id('exc', exception_id)} is resolved"
            )
        return exception_view(resolved)


def exception_view(row: records.ExceptionRow) -> wire.OperationsException:
    prefix = _object_prefixes.get(row.object_type or "")
    object_id = (
        None
        if row.object_id is None
        else encode_id(prefix, row.object_id.int)
        if prefix
        else str(row.object_id)
    )
    return wire.OperationsException(
        id=encode_id("exc", row.id.int),
        kind=row.kind,
        status="open" if row.status == "open" else "resolved",
        tenant_id=row.tenant_id,
        currency=row.currency,
        amount=row.amount_minor,
        object_type=row.object_type,
        object_id=object_id,
        details=row.details,
        created_at=row.created_at,
        resolved_at=row.resolved_at,
        resolved_by=row.resolved_by,
        resolution_note=row.resolution_note,
    )
