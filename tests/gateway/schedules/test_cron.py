"""Cron occurrences in a time zone: the next one after an instant and the latest one at or
before it, in UTC; across a year of daylight-saving changes a daily schedule runs once every
local day (the skipped hour's time at the jump, the repeated hour's time once); and bad
expressions and unknown zones are refused naming their field."""

from __future__ import annotations

import datetime
import zoneinfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.schedules.cron import (
    check_cron,
    check_timezone,
    instant_of,
    latest_at_or_before,
    next_after,
)
from gateway.schedules.errors import InvalidCron, InvalidTimezone

london = zoneinfo.ZoneInfo("Europe/London")
new_york = zoneinfo.ZoneInfo("America/New_York")
utc = datetime.UTC


def at(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text).astimezone(utc)


def test_the_next_occurrence_is_in_the_schedules_zone() -> None:
    # 09:00 in New York in January is 14:00 UTC; in July (EDT) 13:00 UTC.
    assert next_after("0 9 * * *", new_york, at("2026-01-10T12:00:00Z")) == at(
        "2026-01-10T14:00:00Z"
    )
    assert next_after("0 9 * * *", new_york, at("2026-07-10T12:00:00Z")) == at(
        "2026-07-10T13:00:00Z"
    )
    # Strictly after: an instant that is an occurrence gives the following one.
    assert next_after("0 9 * * *", new_york, at("2026-07-10T13:00:00Z")) == at(
        "2026-07-11T13:00:00Z"
    )


def test_the_skipped_hours_occurrence_runs_when_the_clocks_jump() -> None:
    # London, 29 March 2026: 01:00 GMT becomes 02:00 BST; 01:30 does not exist that day.
    assert instant_of(datetime.datetime(2026, 3, 29, 1, 30), london) == at("2026-03-29T01:00:00Z")
    assert next_after("30 1 * * *", london, at("2026-03-28T23:00:00Z")) == at(
        "2026-03-29T01:00:00Z"
    )
    # Every quarter hour: the four skipped ones are the one instant of the jump, once.
    instants = [at("2026-03-29T00:40:00Z")]
    for _ in range(4):
        instants.append(next_after("*/15 * * * *", london, instants[-1]))
    assert instants[1:] == [
        at("2026-03-29T00:45:00Z"),
        at("2026-03-29T01:00:00Z"),  # 01:00-01:45 skipped, and 02:00 BST: one instant.
        at("2026-03-29T01:15:00Z"),  # 02:15 BST.
        at("2026-03-29T01:30:00Z"),
    ]


def test_the_repeated_hours_occurrence_runs_once() -> None:
    # London, 25 October 2026: 02:00 BST becomes 01:00 GMT; 01:30 happens twice.
    first = next_after("30 1 * * *", london, at("2026-10-24T23:00:00Z"))
    assert first == at("2026-10-25T00:30:00Z")  # 01:30 BST, the first pass.
    assert next_after("30 1 * * *", london, first) == at("2026-10-26T01:30:00Z")
    # From inside the second pass, the rest of the repeated hour has already run.
    assert next_after("*/20 * * * *", london, at("2026-10-25T01:10:00Z")) == at(
        "2026-10-25T02:00:00Z"
    )
    assert latest_at_or_before("*/20 * * * *", london, at("2026-10-25T01:10:00Z")) == at(
        "2026-10-25T00:40:00Z"  # 01:40 BST: the last wall time whose instant has passed.
    )


@pytest.mark.parametrize("zone_name", ["Europe/London", "America/New_York", "Australia/Sydney"])
def test_a_daily_schedule_runs_once_every_local_day_for_a_year(zone_name: str) -> None:
    zone = zoneinfo.ZoneInfo(zone_name)
    for expression in ("30 1 * * *", "30 2 * * *", "0 0 * * *"):
        start = datetime.datetime(2026, 1, 1, tzinfo=zone).astimezone(utc)
        moment = start - datetime.timedelta(seconds=1)
        days: list[datetime.date] = []
        while moment < datetime.datetime(2027, 1, 1, tzinfo=zone):
            moment = next_after(expression, zone, moment)
            days.append(moment.astimezone(zone).date())
        days = days[:-1] if days[-1].year == 2027 else days
        assert len(days) == 365, (zone_name, expression)
        assert len(set(days)) == 365, (zone_name, expression)


def test_the_latest_occurrence_is_the_one_a_late_pass_runs() -> None:
    # A schedule due at 09:00 daily and a pass three days late runs the latest only.
    assert latest_at_or_before("0 9 * * *", new_york, at("2026-01-13T15:00:00Z")) == at(
        "2026-01-13T14:00:00Z"
    )
    assert latest_at_or_before("0 9 * * *", new_york, at("2026-01-13T14:00:00Z")) == at(
        "2026-01-13T14:00:00Z"
    )
    assert latest_at_or_before("0 9 * * *", new_york, at("2026-01-13T13:59:59Z")) == at(
        "2026-01-12T14:00:00Z"
    )


moments = st.datetimes(
    min_value=datetime.datetime(2024, 1, 1),
    max_value=datetime.datetime(2030, 1, 1),
    timezones=st.just(utc),
)
expressions = st.sampled_from(
    ["*/15 * * * *", "30 1 * * *", "0 2 * * 0", "5 0,1,2,3 * * *", "0 9 1 * *", "45 23 28 2 *"]
)
zones = st.sampled_from(["Europe/London", "America/New_York", "Australia/Lord_Howe", "UTC"])


@given(moment=moments, expression=expressions, zone_name=zones)
def test_occurrences_bracket_every_instant(
    moment: datetime.datetime, expression: str, zone_name: str
) -> None:
    zone = zoneinfo.ZoneInfo(zone_name)
    following = next_after(expression, zone, moment)
    latest = latest_at_or_before(expression, zone, moment)
    assert latest <= moment < following
    # Nothing between them: the occurrence after the latest is the following one.
    assert next_after(expression, zone, latest) == following
    assert latest_at_or_before(expression, zone, following) == following


def test_bad_expressions_and_zones_are_refused_naming_the_field() -> None:
    now = at("2026-01-01T00:00:00Z")
    assert check_cron("  0   9 * *  MON-FRI ", zone=london, now=now) == "0 9 * * MON-FRI"
    for bad in (
        "0 9 * *",
        "0 9 * * * *",
        "61 * * * *",
        "0 9 L * *",
        "@daily",
        "0 0 30 2 *",
        "0 9 * * FOO",
        "0 9 ? * *",
    ):
        with pytest.raises(InvalidCron) as refused:
            check_cron(bad, zone=london, now=now)
        assert refused.value.field == "cron", bad
    assert check_timezone("Asia/Jakarta").key == "Asia/Jakarta"
    for bad in ("Mars/Olympus", "../../etc/passwd", "", "europe/london"):
        with pytest.raises(InvalidTimezone) as refused_zone:
            check_timezone(bad)
        assert refused_zone.value.field == "timezone"
