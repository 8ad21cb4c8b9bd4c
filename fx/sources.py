"""Rate sources: the internal table (Redis, shared by every process) and an HTTP feed.

The internal table serves standalone deployments: rates are configured (each with the time
it was observed) or set by an operator through the admin API, and every gateway process
reads the same table. The HTTP feed polls a JSON endpoint in the background and serves its
last good answer; when the feed goes quiet, the rates age until the book refuses them.
"""

from __future__ import annotations

import asyncio
import datetime
import json
from collections.abc import Mapping
from decimal import Decimal

import httpx
import msgspec
import structlog
from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from fx.rates import RateObservation, parse_rate

table_key_suffix = "fx:rates"
feed_timeout_seconds = 5.0
feed_refresh_seconds_default = 60.0
feed_rates_max = 500
# Decoded table entries remembered by their stored bytes (the table holds a few dozen).
decoded_entries_max = 4_096
default_rates_per_usd = {
    "EUR": "0.9200",
    "GBP": "0.7900",
    "IDR": "16250",
    "SEK": "10.650",
    "DKK": "6.8600",
    "JPY": "151.20",
    "CHF": "0.8800",
}
log = structlog.get_logger("kovra.fx")


class _StoredRate(msgspec.Struct, frozen=True):
    rate: str
    observed_at: datetime.datetime


class TableRateSource:
    """Rates kept in one Redis hash: `BASE/QUOTE` → rate and observation time."""

    def __init__(self, redis: Redis, *, namespace: str = "kovra") -> None:
        self._redis = redis
        self._key = f"{namespace}:{table_key_suffix}"
        # Every quote and transfer reads the whole table; decoding it each time cost more
        # than reading it. An entry is decoded once per stored value: a changed rate is
        # new bytes, so it is never served stale from here.
        self._decoded: dict[tuple[bytes | str, bytes | str], RateObservation] = {}

    async def observations(self) -> Mapping[tuple[str, str], RateObservation]:
        stored = await self._redis.hgetall(self._key)
        found: dict[tuple[str, str], RateObservation] = {}
        for raw_pair, raw_value in stored.items():
            observation = self._decoded.get((raw_pair, raw_value))
            if observation is None:
                observation = self._decode(raw_pair, raw_value)
            found[(observation.base, observation.quote)] = observation
        return found

    def _decode(self, raw_pair: bytes | str, raw_value: bytes | str) -> RateObservation:
        pair = raw_pair.decode() if isinstance(raw_pair, bytes) else str(raw_pair)
        base, _, quote = pair.partition("/")
        value = msgspec.json.decode(raw_value, type=_StoredRate)
        observation = RateObservation(
            base=base, quote=quote, rate=Decimal(value.rate), observed_at=value.observed_at
        )
        if len(self._decoded) >= decoded_entries_max:
            self._decoded.clear()  # Rates were replaced many times over: start afresh.
        self._decoded[(raw_pair, raw_value)] = observation
        return observation

    async def set_rates(
        self,
        rates: Mapping[tuple[str, str], Decimal],
        *,
        observed_at: datetime.datetime,
        only_missing: bool = False,
    ) -> None:
        """Write rates (all observed at `observed_at`); `only_missing` keeps existing ones."""
        encoded: dict[FieldT, EncodableT] = {
            f"{base}/{quote}": msgspec.json.encode(_StoredRate(str(rate), observed_at))
            for (base, quote), rate in rates.items()
        }
        if not encoded:
            return
        if only_missing:
            for field, value in encoded.items():
                await self._redis.hsetnx(self._key, field, value)
            return
        await self._redis.hset(self._key, mapping=encoded)


def default_table(observed_at: datetime.datetime) -> dict[tuple[str, str], Decimal]:
    """Sandbox rates per USD, a plausible market as of `observed_at` (not live prices)."""
    del observed_at  # The table is the same whenever it is stamped.
    return {
        ("USD", code): parse_rate(rate, field=f"USD/{code}")
        for code, rate in default_rates_per_usd.items()
    }


def parse_table(text: str) -> dict[tuple[str, str], Decimal]:
    """`KOVRA_FX_RATES`: a JSON object like {"USD/EUR": "0.92"}; errors name the pair."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"KOVRA_FX_RATES is not JSON: {error}") from None
    if not isinstance(raw, dict) or len(raw) > feed_rates_max:
        raise ValueError(f"KOVRA_FX_RATES must be an object of at most {feed_rates_max} pairs")
    table: dict[tuple[str, str], Decimal] = {}
    for pair, value in raw.items():
        base, _, quote = str(pair).upper().partition("/")
        if len(base) != 3 or len(quote) != 3:
            raise ValueError(f"KOVRA_FX_RATES: {pair!r} is not a BASE/QUOTE pair")
        table[(base, quote)] = parse_rate(value, field=f"KOVRA_FX_RATES[{pair}]")
    return table


class FeedPayload(msgspec.Struct, frozen=True, kw_only=True):
    """What the HTTP feed answers: rates of `base` to each currency, as of a time."""

    base: str
    as_of: datetime.datetime
    rates: dict[str, str]


class HttpRateFeed:
    """Polls `url` every `refresh_seconds` and serves the last good answer."""

    def __init__(self, url: str, *, refresh_seconds: float = feed_refresh_seconds_default):
        self._url = url
        self._refresh_seconds = refresh_seconds
        self._latest: dict[tuple[str, str], RateObservation] = {}
        self._task: asyncio.Task[None] | None = None
        self._client = httpx.AsyncClient(timeout=feed_timeout_seconds)

    async def observations(self) -> Mapping[tuple[str, str], RateObservation]:
        if not self._latest:
            await self.refresh()
        return self._latest

    async def refresh(self) -> bool:
        """Fetch once; keep the previous rates when the feed fails or answers nonsense."""
        try:
            response = await self._client.get(self._url)
            response.raise_for_status()
            payload = msgspec.json.decode(response.content, type=FeedPayload)
            if len(payload.rates) > feed_rates_max:
                raise ValueError(f"the feed sent more than {feed_rates_max} rates")
            latest = {
                (payload.base, code): RateObservation(
                    base=payload.base,
                    quote=code,
                    observed_at=payload.as_of,
                    rate=parse_rate(value, field=f"feed {payload.base}/{code}"),
                )
                for code, value in payload.rates.items()
            }
        except (httpx.HTTPError, msgspec.ValidationError, msgspec.DecodeError, ValueError):
            log.warning("fx_feed_refresh_failed", url=self._url, exc_info=True)
            return False
        self._latest = latest
        return True

    def start(self) -> None:
        """Refresh in the background until `close`."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self._refresh_seconds)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._client.aclose()
