"""The tenancy domain's operating errors, each with a stable `code` (mapped to problems by
`gateway.http.problems`)."""

from __future__ import annotations

from ledger.errors import DomainError


class UnknownPolicy(DomainError):
    """A tenant was to be linked to a pricing or limit policy that does not exist."""

    code = "unknown_policy"


class PolicyExists(DomainError):
    """A policy with this name exists already."""

    code = "conflict"
