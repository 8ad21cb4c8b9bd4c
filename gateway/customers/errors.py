"""The customer domain's operating errors, each with a stable `code` (mapped to problems by
`gateway.http.problems`)."""

from __future__ import annotations

from ledger.errors import DomainError


class CustomerNotFound(DomainError):
    """No customer of this tenant has this id (another tenant's customer included)."""

    code = "not_found"


class ExternalIdTaken(DomainError):
    """Another customer of the tenant already has this `external_id`."""

    code = "external_id_taken"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, field="external_id")


class InvalidCountry(DomainError):
    """The country is not an ISO 3166-1 alpha-2 code of a country."""

    code = "validation_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, field="country")
