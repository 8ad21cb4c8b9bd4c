"""The webhook domain's operating errors, each with a stable `code` (mapped to problems by
`gateway.http.problems`)."""

from __future__ import annotations

from ledger.errors import DomainError


class TooManyEndpoints(DomainError):
    """The tenant has as many webhook endpoints as it may have."""

    code = "too_many_webhook_endpoints"


class InvalidWebhookUrl(DomainError):
    """The URL may not receive webhooks here (`gateway.webhooks.destinations` says why)."""

    code = "invalid_webhook_url"

    def __init__(self, reason: str) -> None:
        super().__init__(f"this URL cannot receive webhooks: {reason}", field="url")
        self.reason = reason

    def field_errors(self) -> list[tuple[str, str]]:
        return [("url", self.reason)]
