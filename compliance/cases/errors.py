"""The review queue's operating errors, each with a stable `code` (mapped to problems by
`gateway.http.problems`)."""

from __future__ import annotations

from ledger.errors import DomainError


class CaseAlreadyDecided(DomainError):
    """Someone decided this case first; a case is decided once."""

    code = "case_already_decided"


class CaseTransferMissing(DomainError):
    """The case's transfer cannot be found (it belongs to the case's tenant and region)."""

    code = "not_found"
