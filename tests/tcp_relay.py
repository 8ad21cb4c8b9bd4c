"""A TCP port in front of a real server that a test can shut: how the tests make Postgres or
Redis go away and come back (a restart, a server still starting) without touching the
server the rest of the suite uses.

While open, every new connection is forwarded to the server. While shut, each new
connection is taken and dropped at once, and counted; `sever` also drops every connection
already open, as a restarting server does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from tests.gateway.e2e.conftest import free_port

read_bytes_max = 65_536


class Relay:
    """A relay to `target` (`host:port`) on `port`, open unless `is_open=False`."""

    def __init__(self, target: str, *, is_open: bool = True) -> None:
        host, _, port = target.rpartition(":")
        self.target = (host, int(port))
        self.port = free_port()
        self.is_open = is_open
        self.dropped = 0
        self.dropped_twice = asyncio.Event()  # Set once a second connection was dropped.
        self._writers: set[asyncio.StreamWriter] = set()

    def sever(self) -> None:
        """Shut the relay and drop every open connection."""
        self.is_open = False
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.is_open:
            self.dropped += 1
            if self.dropped >= 2:
                self.dropped_twice.set()
            writer.transport.abort()
            return
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self._writers.update((writer, upstream_writer))
        await asyncio.gather(
            _pipe(reader, upstream_writer), _pipe(upstream_reader, writer), return_exceptions=True
        )

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[Relay]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        async with server:
            yield self


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(read_bytes_max):
            sink.write(data)
            await sink.drain()
    finally:
        sink.transport.abort()
