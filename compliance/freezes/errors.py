"""The errors of a frozen party, each with a stable `code` (mapped to problems by
`gateway.http.problems`)."""

from __future__ import annotations

from ledger.errors import DomainError


class TenantFrozen(DomainError):
    """The tenant is frozen: nothing that moves money is accepted for it."""

    code = "tenant_frozen"


class RecipientFrozen(DomainError):
    """The recipient is frozen: it receives no new transfers."""

    code = "recipient_frozen"
