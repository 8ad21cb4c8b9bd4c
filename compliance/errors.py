"""Compliance's operating errors, each with a stable `code` (mapped to problems by
`gateway.http.problems`)."""

from __future__ import annotations

from ledger.errors import DomainError


class ComplianceBlocked(DomainError):
    """Screening or risk scoring refused a payout or a recipient; nothing was stored and
    no money moved. The decision is in the audit trail."""

    code = "compliance_blocked"
