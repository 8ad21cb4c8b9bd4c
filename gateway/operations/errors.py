"""The operations domain's operating errors, each with a stable `code` (mapped to problems by
`gateway.http.problems`)."""

from __future__ import annotations

from ledger.errors import DomainError


class ExceptionUnknown(DomainError):
    code = "not_found"


class ExceptionAlreadyResolved(DomainError):
    """The exception was resolved before; a resolution is never changed."""

    code = "exception_already_resolved"
