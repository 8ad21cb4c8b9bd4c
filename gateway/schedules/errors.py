"""The schedules domain's operating errors, each with a stable `code` (mapped to problems by
`gateway.http.problems`)."""

from __future__ import annotations

from ledger.errors import DomainError


class ScheduleNotFound(DomainError):
    """No schedule of this tenant's customer has this id (another tenant's included)."""

    code = "not_found"


class InvalidCron(DomainError):
    """Not a five-field cron expression, or one that never matches (the 30th of February):
    the document cannot say which are, so it is the domain's own refusal."""

    code = "invalid_cron"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, field="cron")


class InvalidTimezone(DomainError):
    """Not the name of an IANA time zone this deployment knows (its tz database decides, not
    the document)."""

    code = "unknown_timezone"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, field="timezone")


class InvalidSchedule(DomainError):
    """A field that does not belong to the schedule's kind, or is missing from it, as the
    document says (`wire.schedule_kind_fields`)."""

    code = "validation_error"


class MandateCurrencyMismatch(DomainError):
    """A schedule pulls in its mandate's currency; the request named another."""

    code = "validation_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, field="currency")
