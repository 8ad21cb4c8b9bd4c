"""When a cron schedule is due: five-field cron expressions evaluated in an IANA time zone,
daylight-saving changes included, as instants in UTC.

A cron expression names wall-clock times ("30 1 * * *": 01:30 every day). croniter walks
those wall times on naive datetimes (pure calendar arithmetic, no offsets), and this module
turns each into the one instant it means in the schedule's zone (`instant_of`):

- a wall time that exists once is that instant;
- a wall time that exists twice (the hour repeated when clocks go back) is its first
  instant, so the occurrence runs once, not twice;
- a wall time that does not exist (the hour skipped when clocks go forward) is the instant
  the clocks jumped, the first one after the gap, so the occurrence is not skipped. Several
  skipped wall times become that one instant and run once.

`instant_of` never decreases as the wall time grows, which is what lets `next_after` and
`latest_at_or_before` walk wall times in order and stop at the first answer.
"""

from __future__ import annotations

import datetime
import functools
import re
import zoneinfo

from croniter import croniter
from croniter.croniter import CroniterBadCronError, CroniterBadDateError

from gateway.schedules.errors import InvalidCron, InvalidTimezone
from ledger.invariants import ensure, unreachable

cron_fields = 5
cron_length_max = 100
timezone_length_max = 64
# Wall times one search may pass over before it must have found its answer. A search starts
# at most a repeated period (an hour, rarely more) before the answer, so even a schedule due
# every minute needs far fewer; the bound turns a defect into an error, not a hang.
candidates_max = 5_000
# Letters are month and weekday names (JAN, MON); no seconds field, no `L`, `W`, `#` or `?`.
_field_pattern = re.compile(r"^[0-9A-Za-z*/,\-]+$")
_name_pattern = re.compile(r"[A-Za-z]+")
_month_names = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_names = frozenset((*_month_names, "sun", "mon", "tue", "wed", "thu", "fri", "sat"))
_minute = datetime.timedelta(minutes=1)
_utc = datetime.UTC


@functools.cache
def _known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def check_timezone(name: str) -> zoneinfo.ZoneInfo:
    """The zone named `name`; `InvalidTimezone` unless it is an IANA zone known here."""
    if len(name) > timezone_length_max or name not in _known_zones():
        raise InvalidTimezone(f"{name[:timezone_length_max]!r} is not an IANA time zone")
    return zoneinfo.ZoneInfo(name)


def check_cron(expression: str, *, zone: zoneinfo.ZoneInfo, now: datetime.datetime) -> str:
    """The expression with single spaces between its five fields; `InvalidCron` unless it
    is a standard five-field expression (minute hour day-of-month month day-of-week) that
    matches at least once after `now`."""
    fields = expression.split()
    if len(expression) > cron_length_max or len(fields) != cron_fields:
        raise InvalidCron(f"a cron expression has {cron_fields} fields separated by spaces")
    for field in fields:
        if not _field_pattern.match(field) or any(
            name.lower() not in _names for name in _name_pattern.findall(field)
        ):
            raise InvalidCron(f"{field!r} is not a cron field (digits, * / , - and names)")
    normalised = " ".join(fields)
    if not croniter.is_valid(normalised):
        raise InvalidCron(f"{normalised!r} is not a valid cron expression")
    try:
        next_after(normalised, zone, now)
    except (CroniterBadDateError, CroniterBadCronError):
        raise InvalidCron(f"{normalised!r} never matches a date") from None
    return normalised


def instant_of(wall: datetime.datetime, zone: zoneinfo.ZoneInfo) -> datetime.datetime:
    """The UTC instant the naive wall time `wall` means in `zone`: its first instant when
    it is repeated, the end of the gap when it was skipped."""
    ensure(wall.tzinfo is None, "a wall time is naive")
    first = wall.replace(tzinfo=zone, fold=0).astimezone(_utc)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # Skipped: fold=1 reads it with the offset after the change (an instant before the
    # jump), fold=0 with the offset before (an instant after it). The jump lies between.
    before = wall.replace(tzinfo=zone, fold=1).astimezone(_utc)
    return _offset_change(before, first, zone)


def _offset_change(
    low: datetime.datetime, high: datetime.datetime, zone: zoneinfo.ZoneInfo
) -> datetime.datetime:
    """The first second in (low, high] whose UTC offset in `zone` is that of `high`."""
    after = high.astimezone(zone).utcoffset()
    ensure(low < high and low.astimezone(zone).utcoffset() != after, "a jump lies in between")
    low_s, high_s = int(low.timestamp()), int(high.timestamp())
    while high_s - low_s > 1:
        middle = (low_s + high_s) // 2
        moment = datetime.datetime.fromtimestamp(middle, tz=_utc)
        if moment.astimezone(zone).utcoffset() == after:
            high_s = middle
        else:
            low_s = middle
    return datetime.datetime.fromtimestamp(high_s, tz=_utc)


def _wall(instant: datetime.datetime, zone: zoneinfo.ZoneInfo) -> datetime.datetime:
    ensure(instant.tzinfo is not None, "an instant is aware")
    return instant.astimezone(zone).replace(tzinfo=None, fold=0)


def next_after(
    expression: str, zone: zoneinfo.ZoneInfo, instant: datetime.datetime
) -> datetime.datetime:
    """The schedule's first occurrence strictly after `instant`, in UTC.

    Every wall time up to `instant`'s own means an instant at or before it (the mapping never
    decreases), so the search starts there and takes the first wall time whose instant is
    later: a few steps at most when `instant` is in a repeated hour."""
    walls = croniter(expression, _wall(instant, zone))
    for _ in range(candidates_max):
        occurrence = instant_of(walls.get_next(datetime.datetime), zone)
        if occurrence > instant:
            return occurrence
    unreachable(f"no occurrence of {expression!r} within {candidates_max} wall times")


def latest_at_or_before(
    expression: str, zone: zoneinfo.ZoneInfo, instant: datetime.datetime
) -> datetime.datetime:
    """The schedule's last occurrence at or before `instant`, in UTC: the one occurrence a
    schedule due since longer (a worker was down) runs."""
    wall = _wall(instant, zone)
    # croniter's get_prev answers strictly before its start: start a minute past `wall`'s.
    start = wall.replace(second=0, microsecond=0) + _minute
    latest = croniter(expression, start).get_prev(datetime.datetime)
    # Wall times after `wall` may still mean instants at or before `instant` (the rest of a
    # repeated hour when `instant` is in its second pass): take the last of them.
    following = croniter(expression, latest)
    for _ in range(candidates_max):
        candidate = following.get_next(datetime.datetime)
        if instant_of(candidate, zone) > instant:
            return instant_of(latest, zone)
        latest = candidate
    unreachable(f"no occurrence of {expression!r} within {candidates_max} wall times")
