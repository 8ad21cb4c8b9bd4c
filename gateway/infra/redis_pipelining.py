"""A Redis client that sends the commands of one event-loop turn as one write.

Under load a gateway process has dozens of requests in flight, and each needs a few Redis
commands (authenticate, consume the quote, count the daily limit...). Sent one by one, every
command checks a connection out of the pool, writes, waits for its own answer and checks the
connection back in: most of the gateway's Redis cost is this per-command machinery, not
Redis. Here every command issued while the loop runs one turn joins a queue
(`ledger.turn_batching`); at the end of the turn the queue goes out as one write on one
long-lived connection (a write full at `pipeline_commands_max` goes at once), and each caller
gets its own reply (or its own error: a failed command fails only its caller). It is
TigerBeetle's batching applied to Redis: the cost is paid per turn, not per command.

The connection is an asyncio protocol of our own rather than redis-py's pipeline, because
the pipeline packs every argument in Python and awaits every reply under its own timeout,
which measured as the largest single cost of a transfer. Commands are packed by hiredis'
C packer, replies are parsed by hiredis' reader as bytes arrive and handed to their callers
in order, and one timer per turn (not one per reply) bounds how long a reply may take. The
command methods and reply callbacks stay redis-py's, and so do scripts, but for the call
itself (`_DirectScript`). Connections that are not plain TCP (TLS, Unix sockets) keep
redis-py's pipeline, which handles them.

Commands keep their order, and each caller awaits its reply as before, so callers cannot
tell the difference; a lone command in a quiet process waits for nothing but the end of the
current turn. Every command shares the one connection, so a blocking command (BLPOP and
the like) would stall all the others: such commands belong on a client of their own.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterable, Sequence
from typing import Any, Final

import hiredis
from redis._parsers.base import BaseParser
from redis._parsers.response_callbacks import get_response_callbacks
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.client import EMPTY_RESPONSE, NEVER_DECODE
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT, KeyT, ScriptTextT

from ledger.turn_batching import TurnBatcher

# A turn with more commands than this sends them in several writes.
pipeline_commands_max: Final = 512
# Bounds for a connection without its own socket timeouts (redis-py's default is none).
reply_timeout_seconds_default: Final = 5.0
connect_timeout_seconds_default: Final = 5.0


# Our connection speaks RESP2 (redis-py 8 negotiates RESP3 on its own connections), so its
# replies take redis-py's RESP2 callbacks, which give the shapes redis-py's API promises.
# Keyed by upper-case command name, as redis-py's own lookup is case-insensitive.
_resp2_callbacks: Final = {
    name.upper(): callback
    for name, callback in get_response_callbacks(2, legacy_responses=True).items()
}


class _Pending:
    __slots__ = ("arguments", "future", "options")

    def __init__(
        self, arguments: tuple[Any, ...], options: dict[str, Any], future: asyncio.Future[Any]
    ) -> None:
        self.arguments = arguments
        self.options = options
        self.future = future


def _fail(futures: Iterable[asyncio.Future[Any]], error: BaseException) -> None:
    """Give `error` to every caller still waiting (a cancelled one has gone)."""
    for future in futures:
        if not future.done():
            future.set_exception(error)


def _command_words(arguments: tuple[Any, ...]) -> tuple[Any, ...]:
    """redis-py names some commands in one string ('SCRIPT LOAD'); Redis wants two words."""
    name = arguments[0]
    if isinstance(name, str) and " " in name:
        return (*name.split(), *arguments[1:])
    if isinstance(name, bytes) and b" " in name:
        return (*name.split(), *arguments[1:])
    return arguments


class _ReplyProtocol(asyncio.Protocol):
    """One Redis connection: each parsed reply goes to the oldest waiting future.

    A reply that is a Redis error arrives as an exception object (hiredis' `replyError`),
    as the result of its future: the caller raises it, the connection carries on. Each write
    has a deadline for its last reply; one timer at a time watches the oldest deadline, and
    a missed one closes the connection and fails everything still waiting on it.
    """

    def __init__(
        self, *, encoding: str | None, encoding_errors: str, reply_timeout_seconds: float
    ) -> None:
        options: dict[str, Any] = {
            "protocolError": InvalidResponse,
            "replyError": BaseParser.parse_error,
        }
        if encoding is not None:
            options |= {"encoding": encoding, "errors": encoding_errors}
        self._reader = hiredis.Reader(**options)
        self._reply_timeout_seconds = reply_timeout_seconds
        self._transport: asyncio.Transport | None = None
        # uvloop calls connection_made after create_connection returns: wait for this.
        self.made: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        # (commands sent once this write was made, when its last reply is due)
        self._deadlines: collections.deque[tuple[int, float]] = collections.deque()
        self._watchdog: asyncio.TimerHandle | None = None
        self._replies_received = 0
        self._commands_sent = 0
        self.writes = 0  # Socket writes made: one per loop turn with commands.
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, only alike.
        self._transport = transport  # type: ignore[assignment]
        if not self.made.done():
            self.made.set_result(None)

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while self.lost is None:
            try:
                reply = self._reader.gets()
            except InvalidResponse as error:
                self.abort(error)
                return
            if reply is False:  # No whole reply buffered yet (RESP2 has no false value).
                break
            if not self._waiting:
                self.abort(InvalidResponse("Redis sent a reply nobody asked for"))
                return
            self._replies_received += 1
            future = self._waiting.popleft()
            if not future.done():  # Its caller may have been cancelled meanwhile.
                future.set_result(reply)
        while self._deadlines and self._deadlines[0][0] <= self._replies_received:
            self._deadlines.popleft()

    def connection_lost(self, error: Exception | None) -> None:
        if not self.made.done():
            self.made.set_exception(RedisConnectionError("the Redis connection closed at once"))
        self._fail_waiting(
            self.lost or RedisConnectionError(f"the Redis connection closed: {error or 'EOF'}")
        )

    def send(self, packed: bytes, futures: list[asyncio.Future[Any]]) -> None:
        transport = self._transport
        if transport is None or self.lost is not None:
            raise RedisConnectionError("the Redis connection is not open")
        self._waiting.extend(futures)
        self._commands_sent += len(futures)
        loop = asyncio.get_running_loop()
        self._deadlines.append((self._commands_sent, loop.time() + self._reply_timeout_seconds))
        if self._watchdog is None:
            self._watchdog = loop.call_later(self._reply_timeout_seconds, self._watch)
        transport.write(packed)
        self.writes += 1

    def outstanding(self) -> list[asyncio.Future[Any]]:
        return list(self._waiting)

    def _watch(self) -> None:
        self._watchdog = None
        if not self._deadlines or self.lost is not None:
            return
        loop = asyncio.get_running_loop()
        due = self._deadlines[0][1]
        if due <= loop.time():
            self.abort(
                RedisTimeoutError(f"Redis did not answer within {self._reply_timeout_seconds} s")
            )
            return
        self._watchdog = loop.call_at(due, self._watch)

    def abort(self, error: BaseException) -> None:
        """Close the connection and fail every command still waiting on it with `error`."""
        if self.lost is None:
            self.lost = error
        if self._transport is not None:
            self._transport.abort()
        self._fail_waiting(self.lost)

    def _fail_waiting(self, error: BaseException) -> None:
        if self.lost is None:
            self.lost = error
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self._deadlines.clear()
        waiting, self._waiting = self._waiting, collections.deque()
        _fail(waiting, error)


class _DirectScript(AsyncScript):
    """redis-py's script, called by its SHA straight through `execute_command`. redis-py's
    own `__call__` also imports its pipeline class and checks the client against it (a
    Protocol `isinstance`) on every call: about 2% of a transfer's CPU, for the two scripts
    a transfer runs. A script Redis has forgotten (NOSCRIPT) is loaded again, as there."""

    async def __call__(
        self,
        keys: Sequence[KeyT] | None = None,
        args: Iterable[EncodableT] | None = None,
        client: Any = None,
    ) -> Any:
        if client is not None:  # Another client or a pipeline: redis-py's own way.
            return await super().__call__(keys, args, client)
        keys = keys or ()
        arguments = (*keys, *(args or ()))
        try:
            return await self.registered_client.execute_command(
                "EVALSHA", self.sha, len(keys), *arguments
            )
        except NoScriptError:
            self.sha = await self.registered_client.script_load(self.script)
            return await self.registered_client.execute_command(
                "EVALSHA", self.sha, len(keys), *arguments
            )


class PipeliningRedis(Redis):
    """`redis.asyncio.Redis` whose commands of one loop turn share one write."""

    def __init__(self, *arguments: Any, **options: Any) -> None:
        super().__init__(*arguments, **options)
        # A turn's commands; a turn with more than fit one write sends each full write at once.
        self._turn: TurnBatcher[_Pending] = TurnBatcher(
            self._flush_turn, weight_max=pipeline_commands_max
        )
        self._flushes: set[asyncio.Task[None]] = set()
        self._protocol: _ReplyProtocol | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._backlog: list[_Pending] = []
        settings = self.connection_pool.connection_kwargs
        # Only plain TCP goes through our own protocol; anything else keeps redis-py's.
        self._own_wire = self.connection_pool.connection_class is Connection
        self._reply_timeout_seconds: float = (
            settings.get("socket_timeout") or reply_timeout_seconds_default
        )
        self._connect_timeout_seconds: float = (
            settings.get("socket_connect_timeout") or connect_timeout_seconds_default
        )

    # redis-py's asyncio client inherits this method's synchronous signature too (`Script`);
    # what it returns at run time is the asynchronous `AsyncScript`, as here.
    def register_script(self, script: ScriptTextT) -> AsyncScript:  # type: ignore[override]
        return _DirectScript(self, script)

    async def execute_command(self, *arguments: Any, **options: Any) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._turn.add(_Pending(arguments, options, future))
        reply = await future
        if not self._own_wire:
            return reply  # redis-py's pipeline has parsed it already.
        return self._parsed(arguments[0], reply, options)

    def _parsed(self, command_name: Any, reply: Any, options: dict[str, Any]) -> Any:
        """What redis-py's `parse_response` makes of a raw reply, for this command."""
        if isinstance(reply, ResponseError):
            if EMPTY_RESPONSE in options:
                return options[EMPTY_RESPONSE]
            raise reply
        name = command_name.decode() if isinstance(command_name, bytes) else str(command_name)
        callback = _resp2_callbacks.get(name.upper())
        if callback is None:
            return reply
        extra = {
            key: value
            for key, value in options.items()
            if key not in (EMPTY_RESPONSE, NEVER_DECODE, "keys")
        }
        return callback(reply, **extra)

    def _flush_turn(self, batch: list[_Pending]) -> None:
        if not self._own_wire:
            task = asyncio.get_running_loop().create_task(self._send_pipeline(batch))
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)
            return
        protocol = self._protocol
        if protocol is not None and protocol.lost is None and self._connecting is None:
            self._write(protocol, batch)
            return
        self._backlog.extend(batch)
        if self._connecting is None:
            self._connecting = asyncio.get_running_loop().create_task(self._connect())

    def _write(self, protocol: _ReplyProtocol, batch: list[_Pending]) -> None:
        packed: list[bytes] = []
        futures: list[asyncio.Future[Any]] = []
        for pending in batch:
            if pending.future.done():
                continue  # Cancelled before it was sent: nothing to send.
            try:
                packed.append(hiredis.pack_command(_command_words(pending.arguments)))
            except TypeError as error:  # An argument Redis cannot take fails its caller only.
                pending.future.set_exception(error)
                continue
            futures.append(pending.future)
        if not futures:
            return
        try:
            protocol.send(b"".join(packed), futures)
        except RedisConnectionError as error:  # Lost since it was checked: tell the callers.
            _fail(futures, error)

    async def _connect(self) -> None:
        """Open the connection (AUTH and SELECT first), then send what queued meanwhile."""
        try:
            async with asyncio.timeout(self._connect_timeout_seconds):
                protocol = await self._open()
        except BaseException as error:
            backlog, self._backlog = self._backlog, []
            failure = (
                error
                if isinstance(error, RedisConnectionError)
                else RedisConnectionError(f"cannot connect to Redis: {error!r}")
            )
            _fail((pending.future for pending in backlog), failure)
            self._connecting = None
            if not isinstance(error, Exception):
                raise
            return
        self._protocol = protocol
        self._connecting = None
        backlog, self._backlog = self._backlog, []
        for start in range(0, len(backlog), pipeline_commands_max):
            self._write(protocol, backlog[start : start + pipeline_commands_max])

    async def _open(self) -> _ReplyProtocol:
        settings = self.connection_pool.connection_kwargs
        loop = asyncio.get_running_loop()
        decode = bool(settings.get("decode_responses"))
        _, protocol = await loop.create_connection(
            lambda: _ReplyProtocol(
                encoding=settings.get("encoding", "utf-8") if decode else None,
                encoding_errors=settings.get("encoding_errors", "strict"),
                reply_timeout_seconds=self._reply_timeout_seconds,
            ),
            settings.get("host", "localhost"),
            settings.get("port", 6379),
        )
        await protocol.made
        handshake: list[tuple[Any, ...]] = []
        if settings.get("password") is not None:
            username = settings.get("username")
            user = () if username is None else (username,)
            handshake.append(("AUTH", *user, settings["password"]))
        if settings.get("db"):
            handshake.append(("SELECT", settings["db"]))
        futures = [loop.create_future() for _ in handshake]
        if handshake:
            protocol.send(b"".join(hiredis.pack_command(words) for words in handshake), futures)
        for words, reply in zip(handshake, await asyncio.gather(*futures), strict=True):
            if isinstance(reply, Exception):
                protocol.abort(reply)
                raise RedisConnectionError(f"Redis refused {words[0]}: {reply}")
        return protocol

    async def _send_pipeline(self, batch: list[_Pending]) -> None:
        """redis-py's pipeline, for connections our own protocol does not speak."""
        try:
            async with self.pipeline(transaction=False) as pipe:
                for pending in batch:
                    pipe.execute_command(*pending.arguments, **pending.options)
                replies = await pipe.execute(raise_on_error=False)
        except BaseException as error:  # The connection failed: every caller learns it.
            _fail((pending.future for pending in batch), error)
            if not isinstance(error, Exception):
                raise
            return
        for pending, reply in zip(batch, replies, strict=True):
            if pending.future.done():
                continue  # Its caller was cancelled meanwhile.
            if isinstance(reply, Exception):
                pending.future.set_exception(reply)
            else:
                pending.future.set_result(reply)

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        self._turn.flush_now()
        if self._connecting is not None:
            await asyncio.gather(self._connecting, return_exceptions=True)
        await asyncio.gather(*self._flushes, return_exceptions=True)
        protocol, self._protocol = self._protocol, None
        if protocol is not None:
            # Every command sent gets its reply first (the watchdog bounds the wait).
            await asyncio.gather(*protocol.outstanding(), return_exceptions=True)
            protocol.abort(RedisConnectionError("the Redis client is closed"))
        await super().aclose(close_connection_pool)
