"""The quote domain's operating errors, each with a stable `code` (mapped to problems by
`gateway.http.problems`). Refusals of the quote itself (expired, used) are `fx.quotes`'s."""

from __future__ import annotations

from ledger.errors import DomainError


class RatesFromFeed(DomainError):
    """The rate table cannot be set: rates come from the HTTP feed."""

    code = "conflict"


class RateTableInvalid(DomainError):
    """A rate in the table is not a positive decimal for a known pair."""

    code = "validation_error"
