"""The rate book: direct, inverse and USD-cross rates, with stale rates refused, and a
snapshot that prices several pairs from one read of the source."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from decimal import Decimal

import pytest

from fx.rates import RateBook, RateObservation, RateStale, RateUnavailable, parse_rate

now = datetime.datetime(2026, 11, 21, 12, tzinfo=datetime.UTC)


class FixedSource:
    def __init__(self, rates: dict[tuple[str, str], tuple[str, datetime.datetime]]) -> None:
        self.reads = 0
        self._rates = {
            pair: RateObservation(base=pair[0], quote=pair[1], rate=Decimal(rate), observed_at=at)
            for pair, (rate, at) in rates.items()
        }

    async def observations(self) -> Mapping[tuple[str, str], RateObservation]:
        self.reads += 1
        return self._rates


async def test_direct_inverse_and_cross_rates() -> None:
    hour_ago = now - datetime.timedelta(hours=1)
    book = RateBook(
        FixedSource(
            {
                ("USD", "EUR"): ("0.92", now),
                ("USD", "IDR"): ("16250", hour_ago),
                ("GBP", "EUR"): ("1.17", now),
            }
        )
    )
    assert (await book.mid("USD", "EUR", now=now)).rate == Decimal("0.92")
    assert (await book.mid("GBP", "EUR", now=now)).rate == Decimal("1.17")
    inverse = await book.mid("EUR", "USD", now=now)
    assert inverse.rate == Decimal(1) / Decimal("0.92")
    cross = await book.mid("EUR", "IDR", now=now)
    assert cross.rate == Decimal(1) / Decimal("0.92") * Decimal("16250")
    assert cross.observed_at == hour_ago  # A cross rate is as old as its oldest leg.
    assert (await book.mid("EUR", "EUR", now=now)).rate == 1
    with pytest.raises(RateUnavailable):
        await book.mid("EUR", "SEK", now=now)


async def test_stale_rates_refuse_to_quote() -> None:
    old = now - datetime.timedelta(seconds=3601)
    book = RateBook(FixedSource({("USD", "EUR"): ("0.92", old)}), max_age_seconds=3600)
    with pytest.raises(RateStale, match="older than 3600"):
        await book.mid("EUR", "USD", now=now)


def test_rates_are_positive_exact_decimals() -> None:
    assert parse_rate("16250.5", field="x") == Decimal("16250.5")
    for bad in ("0", "-1", "abc", "NaN", "Infinity", "1" * 40):
        with pytest.raises(ValueError, match="x"):
            parse_rate(bad, field="x")
    with pytest.raises(ValueError, match="not floats"):
        parse_rate(0.92, field="x")


async def test_a_snapshot_prices_several_pairs_from_one_read() -> None:
    source = FixedSource({("USD", "EUR"): ("0.92", now), ("USD", "SEK"): ("10.65", now)})
    book = RateBook(source, max_age_seconds=60)
    rates = await book.snapshot()
    assert rates.mid("EUR", "SEK", now=now).rate == Decimal(1) / Decimal("0.92") * Decimal("10.65")
    assert rates.mid("USD", "EUR", now=now).rate == Decimal("0.92")
    assert source.reads == 1
    with pytest.raises(RateStale):
        rates.mid("USD", "EUR", now=now + datetime.timedelta(seconds=61))
