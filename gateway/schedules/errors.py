"""The schedules domain's operating errors, each with a stable `code` (mapped to problems by
`gateway.http.problems`)."""

from __future__ import annotations

from ledger.errors import DomainError


class ScheduleNotFound(DomainError):
    """No schedule of this tenant's customer has this id (another tenant's included)."""

    code = "not_found"


class InvalidCron(DomainError):
    """Not a five-field cron expression, or one that never matches (the 30th of February)."""

    code = "validation_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, field="cron")


class InvalidTimezone(DomainError):
    """Not the name of an IANA time zone this deployment knows."""

    code = "validation_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, field="timezone")


class InvalidSchedule(DomainError):
    """A field that does not belong to the schedule's kind, or is missing from it."""

    code = "validation_error"


class MandateCurrencyMismatch(DomainError):
    """A schedule pulls in its mandate's currency; the request named another."""

    code = "validation_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, field="currency")
