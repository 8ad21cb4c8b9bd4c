"""The transfer domain's operating errors, each with a stable `code` (mapped to problems by
`gateway.http.problems`). Refusals that other domains own keep their own errors: a frozen
recipient (`compliance.freezes.errors`), an expired quote (`fx.quotes`), no funds
(`ledger.errors`), a blocked payout (`compliance.errors`)."""

from __future__ import annotations

from ledger.errors import DomainError


class RecipientUnknown(DomainError):
    """No recipient of this tenant has this id."""

    code = "unknown_recipient"


class RecipientCurrencyMismatch(DomainError):
    """The quote pays another currency than the one the recipient is paid in."""

    code = "recipient_currency_mismatch"


class RecipientUnreadable(DomainError):
    """The recipient could not be read from Redis even after publishing it: retry."""

    code = "dependency_unavailable"


class TransferNotRecorded(DomainError):
    """The database was saturated and shed the transfer before writing it; nothing of it is
    recorded and its funds went back: retry shortly."""

    code = "dependency_unavailable"
    retry_after_seconds = 1


class TransferNotCancellable(DomainError):
    """Only a transfer still `processing` (not yet submitted to its rail) can be cancelled."""

    code = "transfer_not_cancellable"
