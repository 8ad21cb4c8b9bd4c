"""An independent model of daily limits and velocity, for the properties of `test_limits`.

It says what `compliance.limits` must answer from the rules alone, in plain Python with no
Redis and no code of the module under test: per tenant, a UTC day's volume in US cents and an
hour's count of payouts; a payout is admitted while the day's volume plus its own stays
within the limit (reaching it exactly is admitted), and counts once under its marker; a
give-back returns volume and count to the day and hour the payout counted in, once under a
marker, and never to a counter that does not exist. A batch decides its items in order, each
while it fits, and remembers each decision under its marker (`Flag`), so a retry decides
alike; the repair returns what the marker holds, to the day and hour of its first count.
The model's counters are what Redis must hold, key by key.
"""

from __future__ import annotations

import datetime
import enum
import math
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction


def usd_cents(amount_minor: int, *, minor_units: int, to_usd: Decimal) -> int:
    """A payout's US-dollar equivalent in cents, rounded up, at least one cent."""
    return max(1, math.ceil(Fraction(amount_minor * 100, 10**minor_units) * Fraction(to_usd)))


@dataclass(frozen=True)
class Counted:
    """What an admitted payout answers: its own amount and moment, and the totals after it."""

    usd_minor: int
    counted_at: datetime.datetime
    day_usd_minor: int
    payouts_last_hour: int


class Flag(enum.Enum):
    COUNTED = "counted"
    REFUSED = "refused"


@dataclass
class BatchMark:
    first_moment: datetime.datetime
    total_usd_minor: int = 0
    counted: int = 0
    flags: dict[int, Flag] = field(default_factory=dict)


@dataclass
class LimitsModel:
    counters: dict[str, int] = field(default_factory=dict)
    markers: dict[str, tuple[int, datetime.datetime]] = field(default_factory=dict)
    batches: dict[str, BatchMark] = field(default_factory=dict)

    @staticmethod
    def day_key(tenant: int, moment: datetime.datetime) -> str:
        return f"limit:day:{tenant}:{moment:%Y%m%d}"

    @staticmethod
    def hour_key(tenant: int, moment: datetime.datetime) -> str:
        return f"limit:hour:{tenant}:{moment:%Y%m%d%H}"

    def _totals(self, tenant: int, moment: datetime.datetime) -> tuple[int, int]:
        day = self.counters.get(self.day_key(tenant, moment), 0)
        return day, self.counters.get(self.hour_key(tenant, moment), 0)

    def _add(self, key: str, amount: int) -> None:
        self.counters[key] = self.counters.get(key, 0) + amount

    def count(
        self, *, tenant: int, usd: int, limit: int, moment: datetime.datetime, marker: str | None
    ) -> Counted | None:
        """Admit and count one payout, or refuse it (None) counting nothing."""
        if marker is not None and marker in self.markers:
            first_usd, first_moment = self.markers[marker]
            return Counted(first_usd, first_moment, *self._totals(tenant, moment))
        day, _ = self._totals(tenant, moment)
        if day + usd > limit:
            return None
        self._add(self.day_key(tenant, moment), usd)
        self._add(self.hour_key(tenant, moment), 1)
        if marker is not None:
            self.markers[marker] = (usd, moment)
        return Counted(usd, moment, *self._totals(tenant, moment))

    def give_back(
        self, *, tenant: int, usd: int, counted_at: datetime.datetime, marker: str | None
    ) -> None:
        if marker is not None:
            if marker not in self.markers:
                return
            del self.markers[marker]
        self._return(tenant, counted_at, usd=usd, payouts=1)

    def _return(self, tenant: int, moment: datetime.datetime, *, usd: int, payouts: int) -> None:
        returned = {self.day_key(tenant, moment): usd, self.hour_key(tenant, moment): payouts}
        for key, amount in returned.items():
            if key in self.counters:
                self.counters[key] -= amount

    def count_batch(
        self,
        *,
        tenant: int,
        usd: dict[int, int],
        limit: int,
        moment: datetime.datetime,
        marker: str,
    ) -> list[Counted | None]:
        """Decide a batch's items in order, as its marker remembers them."""
        mark = self.batches.setdefault(marker, BatchMark(first_moment=moment))
        used, _ = self._totals(tenant, moment)
        fresh: dict[int, int] = {}
        decided: list[tuple[int, Flag, bool]] = []
        for index, amount in usd.items():
            flag = mark.flags.get(index)
            if flag is None:
                fits = used + sum(fresh.values()) + amount <= limit
                flag = Flag.COUNTED if fits else Flag.REFUSED
                mark.flags[index] = flag
                if fits:
                    fresh[index] = amount
            decided.append((index, flag, index in fresh))
        if fresh:
            self._add(self.day_key(tenant, moment), sum(fresh.values()))
        self._add(self.hour_key(tenant, moment), len(fresh))
        mark.total_usd_minor += sum(fresh.values())
        mark.counted += len(fresh)
        day, hour = self._totals(tenant, moment)
        return [
            Counted(usd[index], moment if now else mark.first_moment, day, hour)
            if flag is Flag.COUNTED
            else None
            for index, flag, now in decided
        ]

    def give_back_batch(
        self,
        *,
        tenant: int,
        items: dict[int, tuple[int, datetime.datetime]],
        marker: str,
    ) -> None:
        """Return the items (index: amount and moment counted) the marker holds as counted."""
        for index, (usd, counted_at) in items.items():
            mark = self.batches.get(marker)
            if mark is None or mark.flags.get(index) is not Flag.COUNTED:
                continue
            del mark.flags[index]
            mark.total_usd_minor -= usd
            mark.counted -= 1
            self._return(tenant, counted_at, usd=usd, payouts=1)
            if mark.counted == 0:
                del self.batches[marker]

    def repair_batch(self, *, tenant: int, marker: str) -> int:
        mark = self.batches.pop(marker, None)
        if mark is None:
            return 0
        self._return(tenant, mark.first_moment, usd=mark.total_usd_minor, payouts=mark.counted)
        return mark.counted
