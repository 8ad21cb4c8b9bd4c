"""The orchestrations domain's operating errors, each with a stable `code` (mapped to
problems by `gateway.http.problems`)."""

from __future__ import annotations

from ledger.errors import DomainError


class OrchestrationUnknown(DomainError):
    """No orchestration of this tenant has this id."""

    code = "not_found"


class MandateUnknown(DomainError):
    """No mandate of this tenant has this id."""

    code = "not_found"


class MandateOfAnotherCustomer(DomainError):
    """A pull collects under one of the customer's own mandates."""

    code = "mandate_customer_mismatch"


class MandateInactive(DomainError):
    """A pull is taken only under an active mandate."""

    code = "mandate_inactive"


class InvalidPullAmount(DomainError):
    """A pull's amount is within what one collection may pull (the document's bounds of
    `amount`, so a `validation_error`; a schedule's pull is checked here too)."""

    code = "validation_error"
