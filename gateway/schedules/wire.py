"""The JSON shapes of schedules (cron pulls and balance-threshold triggers) and of what a due
pass started."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import Meta

from gateway.collections.wire import CollectionAmount, MandateId
from gateway.http.wire import (
    FieldsByValue,
    IssuedCurrencyCode,
    Reference,
    Timestamp,
    fields_by_value,
)
from gateway.schedules.cron import cron_length_max, timezone_length_max

# A threshold is a balance in minor units; the bound keeps it within a Postgres bigint with
# room, and far above any retail account.
threshold_minor_max = 10**13
check_every_minutes_max = 7 * 24 * 60
check_every_minutes_default = 60
ScheduleKind = Literal["cron", "balance_threshold"]
schedule_kinds: tuple[str, ...] = ScheduleKind.__args__  # type: ignore[attr-defined]
ScheduleStatus = Literal["active", "deleted"]

CronExpression = Annotated[
    str,
    Meta(
        min_length=9,
        max_length=cron_length_max,
        description="five fields: minute hour day-of-month month day-of-week",
        examples=["0 9 1 * *"],
    ),
]
TimezoneName = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=timezone_length_max,
        description="an IANA time zone (Europe/Berlin)",
    ),
]
Threshold = Annotated[
    int, Meta(ge=0, le=threshold_minor_max, description="a balance in minor units")
]
CheckEveryMinutes = Annotated[int, Meta(ge=1, le=check_every_minutes_max)]

# The fields each kind of schedule needs given, and those of the other kind it leaves out.
schedule_kind_fields: FieldsByValue = {
    "cron": (("cron", "timezone", "amount"), ("threshold", "check_every_minutes")),
    "balance_threshold": (("threshold",), ("cron", "timezone")),
}


class ScheduleCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A cron schedule (`cron`, `timezone`, `amount`) or a balance-threshold trigger
    (`threshold`, optional `check_every_minutes`, optional `amount`: without it, the
    excess above the threshold): `schedule_kind_fields`."""

    json_schema_extra: ClassVar[dict[str, Any]] = fields_by_value("kind", schedule_kind_fields)

    kind: ScheduleKind
    mandate_id: MandateId
    amount: CollectionAmount | None = None
    reference: Reference | None = None
    cron: CronExpression | None = None
    timezone: TimezoneName | None = None
    threshold: Threshold | None = None
    check_every_minutes: CheckEveryMinutes | None = None


class Schedule(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: str = "schedule"
    customer_id: str
    mandate_id: str
    kind: ScheduleKind
    status: ScheduleStatus
    currency: IssuedCurrencyCode
    amount: int | None
    reference: str
    cron: str | None
    timezone: str | None
    threshold: int | None
    check_every_minutes: int | None
    next_run_at: Timestamp | None  # None once deleted.
    last_run_at: Timestamp | None
    created_at: Timestamp
    deleted_at: Timestamp | None


class SchedulePage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[Schedule]
    next_cursor: str | None


class Started(msgspec.Struct, frozen=True, kw_only=True):
    """An occurrence that started its orchestration run."""

    schedule_id: str
    occurrence_at: Timestamp
    orchestration_id: str
    trigger: str
    amount: int
    currency: str
    balance: int | None = None


class Skipped(msgspec.Struct, frozen=True, kw_only=True):
    """A due schedule that started nothing, and why."""

    schedule_id: str
    occurrence_at: Timestamp
    reason: str


class RunReport(msgspec.Struct, frozen=True, kw_only=True):
    """What a due pass at `at` did."""

    at: Timestamp
    started: list[Started]
    skipped: list[Skipped]
