"""Rate sources: the internal table is shared through Redis (configured and operator rates
with their observation times), and the HTTP feed serves its last good answer from a real
local HTTP server, keeping it when the feed fails."""

from __future__ import annotations

import asyncio
import datetime
import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from redis.asyncio import Redis

from fx.rates import RateBook, RateStale
from fx.sources import HttpRateFeed, TableRateSource, default_table, parse_table

now = datetime.datetime.now(tz=datetime.UTC)
poll_seconds = 0.01
# Only a feed that stopped refreshing reaches it: the refresh under test is every 50 ms.
hang_guard_seconds = 30.0


async def test_the_table_is_shared_and_keeps_observation_times(
    redis_client: Redis, namespace: str
) -> None:
    writer = TableRateSource(redis_client, namespace=namespace)
    reader = TableRateSource(redis_client, namespace=namespace)  # Another process's view.
    await writer.set_rates(default_table(now), observed_at=now)
    earlier = now - datetime.timedelta(hours=2)
    await writer.set_rates(
        {("USD", "EUR"): Decimal("0.91")}, observed_at=earlier, only_missing=True
    )
    found = await reader.observations()
    assert found[("USD", "EUR")].rate == Decimal("0.9200")
    assert found[("USD", "EUR")].observed_at == now
    await writer.set_rates({("USD", "EUR"): Decimal("0.91")}, observed_at=earlier)
    book = RateBook(reader, max_age_seconds=3600)
    with pytest.raises(RateStale, match="older than"):
        await book.mid("EUR", "USD", now=now)
    cross = (await book.mid("GBP", "IDR", now=now)).rate
    assert cross == Decimal(1) / Decimal("0.7900") * Decimal("16250")


def test_configured_tables_name_their_bad_entries() -> None:
    assert parse_table('{"usd/eur": "0.92"}') == {("USD", "EUR"): Decimal("0.92")}
    with pytest.raises(ValueError, match="not a BASE/QUOTE"):
        parse_table('{"USDEUR": "0.92"}')
    with pytest.raises(ValueError, match=r"KOVRA_FX_RATES\[USD/EUR\]"):
        parse_table('{"USD/EUR": "-1"}')
    with pytest.raises(ValueError, match="not JSON"):
        parse_table("{")


class _Feed:
    """A real HTTP server on localhost whose answers the test controls."""

    def __init__(self) -> None:
        self.status = 200
        self.body = b"{}"
        self.hits = 0
        feed = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                feed.hits += 1
                self.send_response(feed.status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(feed.body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/rates"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def feed() -> Iterator[_Feed]:
    server = _Feed()
    try:
        yield server
    finally:
        server.close()


async def test_the_http_feed_serves_its_last_good_answer(feed: _Feed) -> None:
    feed.body = json.dumps(
        {"base": "USD", "as_of": now.isoformat(), "rates": {"EUR": "0.92", "IDR": "16250"}}
    ).encode()
    source = HttpRateFeed(feed.url, refresh_seconds=3600)
    try:
        book = RateBook(source)
        cross = (await book.mid("EUR", "IDR", now=now)).rate
        assert cross == Decimal(1) / Decimal("0.92") * Decimal("16250")
        feed.status = 500
        assert await source.refresh() is False
        feed.status, feed.body = 200, b'{"base": "USD", "rates": "nonsense"}'
        assert await source.refresh() is False
        assert (await book.mid("USD", "EUR", now=now)).rate == Decimal("0.92")
        stale = (now - datetime.timedelta(days=3)).isoformat()
        feed.body = json.dumps({"base": "USD", "as_of": stale, "rates": {"EUR": "0.95"}}).encode()
        assert await source.refresh() is True
        with pytest.raises(RateStale, match="older than"):
            await book.mid("USD", "EUR", now=now)
    finally:
        await source.close()


def _feed_body(eur_per_usd: str) -> bytes:
    return json.dumps(
        {"base": "USD", "as_of": now.isoformat(), "rates": {"EUR": eur_per_usd}}
    ).encode()


async def _until(condition: Callable[[], Awaitable[bool]]) -> None:
    """Polls until `condition` holds; the caller bounds the wait."""
    while True:
        if await condition():
            return
        await asyncio.sleep(poll_seconds)


async def test_the_feed_refreshes_in_the_background(feed: _Feed) -> None:
    """The feed is asked again and again with nobody calling `refresh`, and a rate it changes
    reaches the book: only a feed that stopped refreshing would leave the wait to its guard."""
    feed.body = _feed_body("0.92")
    source = HttpRateFeed(feed.url, refresh_seconds=0.05)
    book = RateBook(source)

    async def asked_twice() -> bool:
        return feed.hits >= 2

    async def changed() -> bool:
        return (await book.mid("USD", "EUR", now=now)).rate == Decimal("0.95")

    source.start()
    try:
        async with asyncio.timeout(hang_guard_seconds):
            await _until(asked_twice)  # Two refreshes done, so the book holds the first rates.
            feed.body = _feed_body("0.95")
            await _until(changed)
    finally:
        await source.close()
