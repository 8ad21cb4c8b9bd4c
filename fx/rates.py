"""Mid-market rates: where they come from, how old they may be, and cross rates via USD.

Every source answers `RateObservation`s (units of the quote currency per one unit of the
base currency, with the time the rate was observed). `RateBook` asks its source, derives a
cross rate through USD where no direct pair is known, and refuses a rate older than
`max_age_seconds`: quoting on a stale rate would hand the platform's margin to the market.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Protocol

import msgspec

pivot_currency = "USD"
rate_digits_max = 28
max_age_seconds_default = 24 * 3600


class RateObservation(msgspec.Struct, frozen=True, kw_only=True):
    base: str
    quote: str
    rate: Decimal
    observed_at: datetime.datetime


class RateUnavailable(Exception):
    """No rate for the pair (directly or through USD)."""


class RateStale(Exception):
    """The freshest rate for the pair is older than the book accepts."""


class RateSource(Protocol):
    async def observations(self) -> Mapping[tuple[str, str], RateObservation]:
        """Every rate the source knows now, by (base, quote)."""
        ...


def parse_rate(value: str | int | float | Decimal, *, field: str) -> Decimal:
    """A positive decimal rate; floats are refused (their binary error is not a rate)."""
    if isinstance(value, float):
        raise ValueError(f"{field}: give rates as strings, not floats")
    try:
        rate = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{field}: {value!r} is not a number") from None
    if not rate.is_finite() or rate <= 0 or len(rate.as_tuple().digits) > rate_digits_max:
        raise ValueError(
            f"{field}: a rate must be a positive number of at most {rate_digits_max} digits"
        )
    return rate


class RateSnapshot:
    """The rates a source knew at one moment: several pairs priced from one read."""

    def __init__(
        self, known: Mapping[tuple[str, str], RateObservation], *, max_age: datetime.timedelta
    ) -> None:
        self._known = known
        self._max_age = max_age

    def mid(
        self, base: str, quote: str, *, now: datetime.datetime | None = None
    ) -> RateObservation:
        """The mid rate base→quote (direct, inverse or through USD), refusing stale rates."""
        moment = now or datetime.datetime.now(tz=datetime.UTC)
        if base == quote:
            return RateObservation(base=base, quote=quote, rate=Decimal(1), observed_at=moment)
        known = self._known
        observation = _direct(known, base, quote) or _through_pivot(known, base, quote)
        if observation is None:
            raise RateUnavailable(f"no rate from {base} to {quote}")
        if moment - observation.observed_at > self._max_age:
            raise RateStale(
                f"the {base}/{quote} rate is from {observation.observed_at.isoformat()}, "
                f"older than {int(self._max_age.total_seconds())} s"
            )
        return observation


class RateBook:
    """Mid rates for any pair of currencies the source can reach, fresh or refused."""

    def __init__(self, source: RateSource, *, max_age_seconds: int = max_age_seconds_default):
        if max_age_seconds <= 0:
            raise ValueError("max_age_seconds must be positive")
        self._source = source
        self._max_age = datetime.timedelta(seconds=max_age_seconds)

    async def snapshot(self) -> RateSnapshot:
        """What the source knows now, read once (a quote needs two rates, a transfer one)."""
        return RateSnapshot(await self._source.observations(), max_age=self._max_age)

    async def mid(
        self, base: str, quote: str, *, now: datetime.datetime | None = None
    ) -> RateObservation:
        """One rate from a snapshot of its own (see `RateSnapshot.mid`)."""
        return (await self.snapshot()).mid(base, quote, now=now)


def _direct(
    known: Mapping[tuple[str, str], RateObservation], base: str, quote: str
) -> RateObservation | None:
    found = known.get((base, quote))
    if found is not None:
        return found
    inverse = known.get((quote, base))
    if inverse is None:
        return None
    return RateObservation(
        base=base, quote=quote, rate=Decimal(1) / inverse.rate, observed_at=inverse.observed_at
    )


def _through_pivot(
    known: Mapping[tuple[str, str], RateObservation], base: str, quote: str
) -> RateObservation | None:
    first = _direct(known, base, pivot_currency)
    second = _direct(known, pivot_currency, quote)
    if first is None or second is None:
        return None
    return RateObservation(
        base=base,
        quote=quote,
        rate=first.rate * second.rate,
        observed_at=min(first.observed_at, second.observed_at),
    )
