"""The gateway's pipelining Redis client, against the real local Redis and a silent peer.

Proves that the commands of one loop turn reach Redis in one write and that every caller
gets its own reply, in order, across hundreds of concurrent commands; that replies have the
shapes redis-py's own client gives (hashes as dicts, SET as a bool, scripts, a script Redis
has forgotten loaded again); that a Redis error or an argument Redis cannot take fails only
its own caller; that a cancelled caller does not shift anyone's reply; that the database in
the URL is selected and a password is sent first; that a dropped connection fails what was
waiting and the next command reconnects; that a peer that never answers fails the waiting
commands after the reply timeout instead of hanging them; and that closing waits for the
replies already asked for.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.infra.redis_pipelining import PipeliningRedis
from tests.conftest import redis_url

# Only a hang reaches it: the reply timeouts under test are a fraction of a second.
hang_guard_seconds = 30.0


def _client(url: str = redis_url, **options: float) -> PipeliningRedis:
    # As the gateway makes it (gateway.runtime): the client owns and closes its pool.
    redis = PipeliningRedis.from_pool(BlockingConnectionPool.from_url(url, **options))
    assert isinstance(redis, PipeliningRedis)
    return redis


@pytest.fixture
async def client() -> AsyncIterator[PipeliningRedis]:
    redis = _client(socket_timeout=5)
    try:
        yield redis
    finally:
        await redis.aclose()


async def test_concurrent_commands_each_get_their_own_reply_in_order(
    client: PipeliningRedis, namespace: str
) -> None:
    key = f"{namespace}:counter"
    replies = await asyncio.gather(*(client.incr(key) for _ in range(600)))
    assert sorted(replies) == list(range(1, 601))
    assert replies == list(range(1, 601))  # One connection, so Redis saw them in call order.
    values = {f"{namespace}:k{index}": f"v{index}" for index in range(300)}
    await asyncio.gather(*(client.set(name, value) for name, value in values.items()))
    got = await asyncio.gather(*(client.get(name) for name in values))
    assert got == [value.encode() for value in values.values()]


async def test_one_turn_is_one_write(client: PipeliningRedis, namespace: str) -> None:
    await client.ping()  # Connected before counting.
    protocol = client._protocol
    assert protocol is not None
    before = protocol.writes
    key = f"{namespace}:batch"
    await asyncio.gather(*(client.incr(key) for _ in range(50)))
    assert protocol.writes - before == 1
    await client.incr(key)
    await client.incr(key)
    assert protocol.writes - before == 3  # Awaited one after the other: a turn each.
    assert not protocol.outstanding()


async def test_reply_shapes_match_redis_py(client: PipeliningRedis, namespace: str) -> None:
    plain = Redis.from_url(redis_url)
    try:
        hash_key, string_key = f"{namespace}:hash", f"{namespace}:string"
        await plain.hset(hash_key, mapping={"a": "1", "b": "2"})
        for redis in (client, plain):
            assert await redis.set(string_key, "x") is True
            assert await redis.set(string_key, "y", nx=True) is None
        assert await client.hgetall(hash_key) == await plain.hgetall(hash_key)
        assert await client.hgetall(f"{namespace}:missing") == {}
        assert await client.hmget(hash_key, "a", "zz") == [b"1", None]
        assert await client.mget(string_key, f"{namespace}:none") == [b"x", None]
        assert await client.ping() is True
        assert await client.expire(string_key, 60) is True
        assert await client.delete(string_key, hash_key) == 2
    finally:
        await plain.aclose()


async def test_scripts_load_again_after_redis_forgets_them(
    client: PipeliningRedis, namespace: str
) -> None:
    script = client.register_script(
        f"-- {secrets.token_hex(8)}\nreturn {{KEYS[1], ARGV[1], tonumber(ARGV[2]) + 1}}"
    )
    key = f"{namespace}:script"
    # The first call gets NOSCRIPT (a fresh script) and loads it through `SCRIPT LOAD`.
    assert await script(keys=[key], args=["a", 41]) == [key.encode(), b"a", 42]
    assert await script(keys=[key], args=["b", 1]) == [key.encode(), b"b", 2]


async def test_an_error_fails_only_its_own_caller(client: PipeliningRedis, namespace: str) -> None:
    key = f"{namespace}:text"
    await client.set(key, "plain")
    ok_before, wrong, bad_argument, ok_after = await asyncio.gather(
        client.get(key),
        client.hgetall(key),
        client.set(f"{namespace}:none", None),  # type: ignore[arg-type]
        client.get(key),
        return_exceptions=True,
    )
    assert ok_before == b"plain"
    assert ok_after == b"plain"
    assert isinstance(wrong, ResponseError)
    assert "WRONGTYPE" in str(wrong)
    assert isinstance(bad_argument, TypeError)
    assert await client.get(key) == b"plain"


async def test_a_cancelled_caller_does_not_shift_replies(
    client: PipeliningRedis, namespace: str
) -> None:
    await client.set(f"{namespace}:a", "A")
    await client.set(f"{namespace}:b", "B")

    async def get(key: str) -> bytes | str | None:
        return await client.get(key)

    cancelled = asyncio.create_task(get(f"{namespace}:a"))
    second = asyncio.create_task(get(f"{namespace}:b"))
    await asyncio.sleep(0)  # Both are queued for this turn's write.
    cancelled.cancel()
    assert await second == b"B"
    assert await client.get(f"{namespace}:a") == b"A"


async def test_the_database_in_the_url_is_selected(namespace: str) -> None:
    database = 7
    url = redis_url.rsplit("/", 1)[0] + f"/{database}"
    redis = _client(url)
    plain = Redis.from_url(url)
    other = Redis.from_url(redis_url.rsplit("/", 1)[0] + "/0")
    key = f"{namespace}:selected"
    try:
        await redis.set(key, "here", ex=60)
        assert await plain.get(key) == b"here"
        if database != 0:
            assert await other.get(key) is None
    finally:
        await plain.delete(key)
        await redis.aclose()
        await plain.aclose()
        await other.aclose()


class _Peer:
    """A TCP peer that records what it is sent, answers `+OK` to AUTH and SELECT and nothing
    else: a Redis that hangs. With `hang_up_first`, it closes its first connection as soon
    as a command arrives: a Redis that dies mid-request."""

    def __init__(self, *, hang_up_first: bool = False) -> None:
        self.received = bytearray()
        self.connections = 0
        self._hang_up_first = hang_up_first
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        answered = 0
        while chunk := await reader.read(65_536):
            if self._hang_up_first and self.connections == 1:
                writer.close()
                return
            self.received.extend(chunk)
            handshakes = self.received.count(b"AUTH") + self.received.count(b"SELECT")
            writer.write(b"+OK\r\n" * (handshakes - answered))
            answered = handshakes
            await writer.drain()


async def test_password_and_database_go_first() -> None:
    peer = _Peer()
    async with peer as port:
        redis = _client(f"redis://user:secret@127.0.0.1:{port}/3", socket_timeout=0.3)
        with pytest.raises(RedisTimeoutError):
            await redis.get("anything")
        assert bytes(peer.received).startswith(
            b"*3\r\n$4\r\nAUTH\r\n$4\r\nuser\r\n$6\r\nsecret\r\n"
            b"*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n"
            b"*2\r\n$3\r\nGET\r\n"
        )
        await redis.aclose()


async def test_a_peer_that_never_answers_times_out_every_waiting_command() -> None:
    """All twenty wait on one connection and fail together with the reply timeout's error;
    without the timeout only the outer guard would end them."""
    peer = _Peer()
    async with peer as port:
        redis = _client(f"redis://127.0.0.1:{port}/0", socket_timeout=0.3)
        async with asyncio.timeout(hang_guard_seconds):
            outcomes = await asyncio.gather(
                *(redis.get(f"k{index}") for index in range(20)), return_exceptions=True
            )
        assert [str(outcome) for outcome in outcomes] == ["Redis did not answer within 0.3 s"] * 20
        assert all(isinstance(outcome, RedisTimeoutError) for outcome in outcomes)
        assert peer.connections == 1
        assert bytes(peer.received).count(b"GET") == 20  # Sent together, before any timed out.
        await redis.aclose()


async def test_a_dropped_connection_fails_waiting_commands_then_reconnects() -> None:
    peer = _Peer(hang_up_first=True)
    async with peer as port:
        redis = _client(f"redis://127.0.0.1:{port}/0", socket_timeout=0.3)
        outcomes = await asyncio.gather(
            *(redis.get(f"k{index}") for index in range(5)), return_exceptions=True
        )
        assert all(isinstance(outcome, RedisConnectionError) for outcome in outcomes)
        with pytest.raises(RedisTimeoutError):  # A new connection, to a peer that hangs.
            await redis.get("again")
        assert peer.connections == 2
        await redis.aclose()


async def test_a_killed_connection_is_replaced(client: PipeliningRedis, namespace: str) -> None:
    key = f"{namespace}:survivor"
    await client.set(key, "still here")
    connection_id = await client.client_id()
    killer = Redis.from_url(redis_url)
    try:
        assert await killer.client_kill_filter(_id=str(connection_id)) == 1
        await asyncio.sleep(0.05)  # The close reaches the client.
        assert await client.get(key) == b"still here"
        assert await client.client_id() != connection_id
    finally:
        await killer.aclose()


async def test_closing_waits_for_replies_already_asked_for(namespace: str) -> None:
    redis = _client(socket_timeout=5)
    key = f"{namespace}:closing"

    async def increment() -> int:
        return await redis.incr(key)

    pending = [asyncio.create_task(increment()) for _ in range(100)]
    await asyncio.sleep(0)
    await redis.aclose()
    assert sorted([await task for task in pending]) == list(range(1, 101))


class _OtherConnection(Connection):
    """Stands for TLS or a Unix socket: any connection class but plain TCP's."""


async def test_other_connection_kinds_keep_redis_pys_pipeline(namespace: str) -> None:
    redis = PipeliningRedis.from_pool(
        BlockingConnectionPool.from_url(redis_url, connection_class=_OtherConnection)
    )
    assert isinstance(redis, PipeliningRedis)
    key = f"{namespace}:fallback"
    try:
        replies = await asyncio.gather(*(redis.incr(key) for _ in range(50)))
        assert replies == list(range(1, 51))
        assert await redis.hgetall(f"{namespace}:missing") == {}
        assert redis._protocol is None  # Nothing went through our own protocol.
    finally:
        await redis.aclose()
