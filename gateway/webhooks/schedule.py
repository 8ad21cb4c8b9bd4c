"""When a failed delivery is tried again: the retry schedule and its jitter.

The schedule lists the delay before each retry in seconds (`KOVRA_WEBHOOK_RETRY_SCHEDULE`);
a delivery is tried once, then once after each delay, and dead-lettered when the last
retry fails. The default grows roughly fivefold per step and spans about a day, so a
receiver that is down overnight still gets its events. Each delay is spread by ±20% so the
retries of a burst that failed together do not come back together.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable

retry_schedule_default = (5.0, 30.0, 120.0, 600.0, 1_800.0, 7_200.0, 21_600.0, 43_200.0)
retries_max = 20
retry_delay_seconds_max = 7 * 24 * 3600.0
jitter_fraction = 0.2


def parse_schedule(text: str) -> tuple[float, ...]:
    """`"5,30,120"` as delays in seconds, or ValueError saying what is wrong."""
    parts = [part.strip() for part in text.split(",")]
    if not parts or any(not part for part in parts):
        raise ValueError("must be comma-separated numbers of seconds, such as 5,30,120")
    if len(parts) > retries_max:
        raise ValueError(f"must list at most {retries_max} retries")
    delays = []
    for part in parts:
        try:
            delay = float(part)
        except ValueError:
            raise ValueError(f"{part!r} is not a number of seconds") from None
        if not 0 <= delay <= retry_delay_seconds_max:
            raise ValueError(f"each delay must be between 0 and {retry_delay_seconds_max:.0f} s")
        delays.append(delay)
    return tuple(delays)


def retry_delay_seconds(
    schedule: tuple[float, ...],
    *,
    failed_attempt: int,
    random: Callable[[], float] = _random.random,
) -> float | None:
    """The delay before the next try after attempt `failed_attempt` (1-based within the
    round) failed, or None: that was the last one, dead-letter it."""
    if failed_attempt < 1:
        raise ValueError("attempts count from 1")
    if failed_attempt > len(schedule):
        return None
    base = schedule[failed_attempt - 1]
    return base * (1 + jitter_fraction * (2 * random() - 1))
