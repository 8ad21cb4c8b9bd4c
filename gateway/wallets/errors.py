"""The wallet domain's operating errors, each with a stable `code` (mapped to problems by
`gateway.http.problems`)."""

from __future__ import annotations

from ledger.errors import DomainError


class DepositsSandboxOnly(DomainError):
    """Deposits are simulated bank transfers: outside the sandbox there are none."""

    code = "not_found"


class HoldUnknown(DomainError):
    """No hold of this tenant has this id."""

    code = "not_found"
