"""A Redis client that sends the commands of one event-loop turn as one pipeline.

Under load a gateway process has dozens of requests in flight, and each needs a few Redis
commands (authenticate, consume the quote, count the daily limit...). Sent one by one, every
command checks a connection out of the pool, writes, waits for its own answer and checks the
connection back in: most of the gateway's Redis cost is this per-command machinery, not
Redis. Here every command issued while the loop runs one turn joins a queue; at the end of
the turn the queue goes out as one non-transactional pipeline on one connection, and each
caller gets its own reply (or its own error: a failed command fails only its caller). It is
TigerBeetle's batching applied to Redis: the cost is paid per turn, not per command.

Commands keep their order, and each caller awaits its reply as before, so callers cannot
tell the difference; a lone command in a quiet process waits for nothing but the end of the
current turn.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis

# A turn with more commands than this sends them in several pipelines.
pipeline_commands_max = 512


class _Pending:
    __slots__ = ("arguments", "future", "options")

    def __init__(
        self, arguments: tuple[Any, ...], options: dict[str, Any], future: asyncio.Future[Any]
    ) -> None:
        self.arguments = arguments
        self.options = options
        self.future = future


class PipeliningRedis(Redis):
    """`redis.asyncio.Redis` whose commands of one loop turn share one pipeline."""

    def __init__(self, *arguments: Any, **options: Any) -> None:
        super().__init__(*arguments, **options)
        self._pending: list[_Pending] = []
        self._flushes: set[asyncio.Task[None]] = set()

    async def execute_command(self, *arguments: Any, **options: Any) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush_turn)
        self._pending.append(_Pending(arguments, options, future))
        if len(self._pending) >= pipeline_commands_max:
            self._flush_turn()
        return await future

    def _flush_turn(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _send(self, batch: list[_Pending]) -> None:
        try:
            async with self.pipeline(transaction=False) as pipe:
                for pending in batch:
                    pipe.execute_command(*pending.arguments, **pending.options)
                replies = await pipe.execute(raise_on_error=False)
        except BaseException as error:  # The connection failed: every caller learns it.
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(error)
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
        if self._pending:
            self._flush_turn()
        await asyncio.gather(*self._flushes, return_exceptions=True)
        await super().aclose(close_connection_pool)
