"""The shared embedded ledger server: one process owns the engine, the others connect to it.

It exists because the embedded engine (and its journal, locked to one process) cannot be
shared by `kovra serve --workers N` and `kovra worker` directly, and CI has no TigerBeetle
server. This process owns one `EmbeddedClient` and serves it on a loopback TCP port or a
Unix socket to any number of `RemoteLedgerClient` connections.

Every request, from every connection, goes through that one `EmbeddedClient`, so requests
arriving together are executed as one batch and journaled in one write before any of them is
answered: an acknowledged write survives the server being killed. Errors the engine raises
are answered as typed errors and raised again client-side as the same exceptions.

Run it as `python -m ledger.remote.server --journal PATH --address 127.0.0.1:3300`; it
prints a ready line to stdout and stops cleanly on SIGTERM or SIGINT, flushing the journal
and releasing its lock.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import uvloop

from ledger.clients import EmbeddedClient, LedgerClient
from ledger.clients.codec import pack_accounts, pack_transfers
from ledger.embedded.journal import JournalCorrupt, JournalInUse
from ledger.invariants import unreachable
from ledger.remote.protocol import (
    LedgerAddress,
    Operation,
    ProtocolError,
    ReplyHeader,
    ReplyStatus,
    RequestHeader,
    TcpAddress,
    UnixAddress,
    address_environment_variable,
    decode_account_filter,
    decode_ids,
    decode_query_filter,
    encode_balances,
    encode_create_results,
    encode_frame,
    format_address,
    in_flight_max,
    is_loopback,
    parse_address,
    read_frame,
    reply_for_error,
    request_decoder,
    stream_limit,
    unpack_accounts,
    unpack_transfers,
)

logger = logging.getLogger(__name__)

address_default = "127.0.0.1:3300"
# On shutdown, requests already executing get this long to be answered before their
# connections are closed (the engine answers within one event-loop turn).
shutdown_grace_s = 2.0
_shutdown_signals = (signal.SIGTERM, signal.SIGINT)


async def execute(ledger: LedgerClient, operation: Operation, payload: bytes) -> bytes:
    """Decode one request, run it on `ledger`, and encode its result."""
    match operation:
        case Operation.CREATE_ACCOUNTS:
            return encode_create_results(await ledger.create_accounts(unpack_accounts(payload)))
        case Operation.CREATE_TRANSFERS:
            return encode_create_results(await ledger.create_transfers(unpack_transfers(payload)))
        case Operation.LOOKUP_ACCOUNTS:
            return pack_accounts(await ledger.lookup_accounts(decode_ids(payload)))
        case Operation.LOOKUP_TRANSFERS:
            return pack_transfers(await ledger.lookup_transfers(decode_ids(payload)))
        case Operation.GET_ACCOUNT_TRANSFERS:
            filter_ = decode_account_filter(payload)
            return pack_transfers(await ledger.get_account_transfers(filter_))
        case Operation.GET_ACCOUNT_BALANCES:
            filter_ = decode_account_filter(payload)
            return encode_balances(await ledger.get_account_balances(filter_))
        case Operation.QUERY_ACCOUNTS:
            return pack_accounts(await ledger.query_accounts(decode_query_filter(payload)))
        case Operation.QUERY_TRANSFERS:
            return pack_transfers(await ledger.query_transfers(decode_query_filter(payload)))


class _ServerConnection:
    """One client connection: reads requests, runs each as its own task, writes replies."""

    def __init__(
        self, ledger: LedgerClient, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._ledger = ledger
        self._reader = reader
        self._writer = writer
        self._slots = asyncio.Semaphore(in_flight_max)
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._reading = asyncio.create_task(self._read_requests())

    async def run(self) -> None:
        """Serve until the client leaves or `stop` is called; always close the socket."""
        try:
            await self._reading
        except asyncio.CancelledError:
            if not self._stopping:
                raise  # Our own task was cancelled, not just the reading.
        except (EOFError, ConnectionError):
            pass  # The client went away (IncompleteReadError is an EOFError).
        except ProtocolError as error:
            logger.warning("closing a connection that broke the protocol: %s", error)
        finally:
            await self._finish()

    def stop(self) -> None:
        """Stop reading requests; `run` then answers those running and returns."""
        self._stopping = True
        self._reading.cancel()

    async def _read_requests(self) -> None:
        while True:
            header, payload = await read_frame(self._reader, request_decoder)
            await self._slots.acquire()  # At the maximum, stop reading: backpressure.
            task = asyncio.create_task(self._answer(header, payload))
            self._tasks.add(task)
            task.add_done_callback(self._answered)

    def _answered(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    async def _answer(self, header: RequestHeader, payload: bytes) -> None:
        try:
            result = await execute(self._ledger, header.operation, payload)
            reply = ReplyHeader(request_id=header.request_id, status=ReplyStatus.OK)
        except Exception as error:
            result, reply = b"", reply_for_error(header.request_id, error)
            if reply.status is not ReplyStatus.TOO_MUCH_DATA:
                logger.warning("%s failed: %r", header.operation.name, error)
        if self._writer.is_closing():
            return
        self._writer.write(encode_frame(reply, result))
        with contextlib.suppress(ConnectionError):
            await self._writer.drain()

    async def _finish(self) -> None:
        """Let requests already running answer (bounded), then close the socket."""
        leftovers: set[asyncio.Task[None]] = set()
        try:
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=shutdown_grace_s)
        finally:  # Even when cancelled mid-wait: never leave the socket open.
            leftovers = set(self._tasks)
            for task in leftovers:
                task.cancel()
            self._writer.close()
        if leftovers:
            await asyncio.wait(leftovers)
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()


class LedgerServer:
    """Serves one `LedgerClient` (the embedded engine) to many connections."""

    def __init__(self, ledger: LedgerClient) -> None:
        self._ledger = ledger
        self._server: asyncio.Server | None = None
        self._bound: LedgerAddress | None = None
        # Handler tasks belong to asyncio's stream machinery and must end normally (Python
        # 3.11's callback calls `exception()` on them), so shutdown stops their connections
        # instead of cancelling them.
        self._connections: dict[_ServerConnection, asyncio.Task[None]] = {}
        self.connections_accepted = 0

    @classmethod
    async def start(cls, ledger: LedgerClient, address: LedgerAddress) -> LedgerServer:
        """Listen on `address` (a TCP port of 0 picks a free one; see `address`)."""
        server = cls(ledger)
        await server._listen(address)
        return server

    @property
    def address(self) -> str:
        """The address actually bound, in `KOVRA_LEDGER_ADDRESS` form."""
        if self._bound is None:
            unreachable("a LedgerServer is listening from `start` on")
        return format_address(self._bound)

    async def _listen(self, address: LedgerAddress) -> None:
        match address:
            case TcpAddress(host=host, port=port):
                if not is_loopback(host):
                    raise ValueError(
                        f"the ledger server has no authentication and listens on loopback "
                        f"addresses only, not {host!r}"
                    )
                self._server = await asyncio.start_server(
                    self._handle, host, port, limit=stream_limit
                )
                bound_port = int(self._server.sockets[0].getsockname()[1])
                self._bound = TcpAddress(host=host, port=bound_port)
            case UnixAddress(path=path):
                self._server = await asyncio.start_unix_server(
                    self._handle, path, limit=stream_limit
                )
                self._bound = address

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is None:
            unreachable("asyncio handles every connection in a task")
        if self._server is None:  # Accepted while closing: refuse it.
            writer.close()
            return
        self.connections_accepted += 1
        connection = _ServerConnection(self._ledger, reader, writer)
        self._connections[connection] = task
        try:
            await connection.run()
        finally:
            del self._connections[connection]

    async def close(self) -> None:
        """Stop listening, answer what is running, and close every connection."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        handlers = set(self._connections.values())
        for connection in self._connections:
            connection.stop()
        if handlers:
            await asyncio.wait(handlers)
        await server.wait_closed()
        if isinstance(self._bound, UnixAddress):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._bound.path)


@contextlib.asynccontextmanager
async def running_server(
    *, journal_path: Path | None, address: str, fsync: bool = False
) -> AsyncIterator[LedgerServer]:
    """An `EmbeddedClient` on `journal_path` (None: in memory) served on `address`; on exit
    the server stops and the engine closes, flushing the journal and releasing its lock."""
    parsed = parse_address(address)
    engine = EmbeddedClient(journal_path, fsync=fsync)
    try:
        server = await LedgerServer.start(engine, parsed)
        try:
            yield server
        finally:
            await server.close()
    finally:
        await engine.close()


async def serve(
    *,
    journal_path: Path | None,
    address: str,
    ready: asyncio.Event | None = None,
    fsync: bool = False,
) -> None:
    """Serve the embedded ledger on `address` until cancelled; set `ready` once listening."""
    async with running_server(journal_path=journal_path, address=address, fsync=fsync):
        if ready is not None:
            ready.set()
        await asyncio.Event().wait()


# ------------------------------------------------------------------------------------------
# `python -m ledger.remote.server`.


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _serve_until_signalled(journal_path: Path | None, address: str, fsync: bool) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in _shutdown_signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        async with running_server(journal_path=journal_path, address=address, fsync=fsync) as s:
            journal = str(journal_path) if journal_path is not None else "none (in memory)"
            _say(f"kovra ledger server ready address={s.address} journal={journal}")
            await stop.wait()
    finally:
        for signum in _shutdown_signals:
            loop.remove_signal_handler(signum)
    _say("kovra ledger server stopped")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ledger.remote.server",
        description="Serve the embedded ledger to several Kovra processes over a local socket.",
    )
    parser.add_argument(
        "--journal", type=Path, default=None, help="journal file (default: in memory only)"
    )
    parser.add_argument(
        "--address",
        default=os.environ.get(address_environment_variable, address_default),
        help=f"HOST:PORT on loopback or unix:PATH (default: ${address_environment_variable} "
        f"or {address_default})",
    )
    parser.add_argument("--fsync", action="store_true", help="fsync every journal write")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    try:
        # uvloop: the server is a socket loop around the engine; its transports cost less.
        uvloop.run(_serve_until_signalled(arguments.journal, arguments.address, arguments.fsync))
    except (ValueError, OSError, JournalInUse, JournalCorrupt) as error:
        sys.stderr.write(f"kovra ledger server: {error}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
