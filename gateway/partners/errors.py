"""The partner domain's operating errors, each with a stable `code` (mapped to problems by
`gateway.http.problems`)."""

from __future__ import annotations

from ledger.errors import DomainError


class PartnerNotFound(DomainError):
    """No partner of this tenant has this id (another tenant's partner included)."""

    code = "not_found"


class InvalidPartner(DomainError):
    """A URL for the sandbox adapter or none for `http`, as the document says
    (`wire.adapter_fields`)."""

    code = "validation_error"

    def __init__(self, detail: str, *, field: str) -> None:
        super().__init__(detail, field=field)


class PartnerUnreachable(DomainError):
    """A partner this deployment will not send to: a URL the address policy refuses, or the
    sandbox adapter outside the sandbox. The deployment decides, not the document, so it is
    the domain's own refusal."""

    code = "partner_unreachable"

    def __init__(self, detail: str, *, field: str) -> None:
        super().__init__(detail, field=field)
