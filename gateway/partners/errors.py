"""The partner domain's operating errors, each with a stable `code` (mapped to problems by
`gateway.http.problems`)."""

from __future__ import annotations

from ledger.errors import DomainError


class PartnerNotFound(DomainError):
    """No partner of this tenant has this id (another tenant's partner included)."""

    code = "not_found"


class InvalidPartner(DomainError):
    """A partner that cannot be reached as described: a URL for the sandbox adapter, none
    for `http`, a URL the address policy refuses, or the sandbox adapter in production."""

    code = "validation_error"

    def __init__(self, detail: str, *, field: str) -> None:
        super().__init__(detail, field=field)
