"""The shared embedded ledger server and `RemoteLedgerClient` behave like `EmbeddedClient`.

Proves that: every `LedgerClient` method gives the same results through the server as on a
direct `EmbeddedClient` fed the same operations (statuses, balances, lookups, filters and
queries; timestamps aside); u128, u64, u32 and u16 extremes survive the wire; the engine's
exceptions come back as the same types (`TooMuchDataError`, `IntegerOverflowError`), from the
client's own checks and from the server; two client connections doing 500 concurrent holds
each on one funded wallet never overdraw it; a server subprocess killed with SIGKILL and
restarted on its journal has lost nothing it acknowledged, and the client reconnects to it;
SIGTERM stops it cleanly with exit code 0 and releases the journal; a server that never
answers, a refused connection, an oversized frame and a closed client all surface as
`LedgerUnavailable` (or a closed connection) within bounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import tigerbeetle as tb

from ledger.clients import EmbeddedClient, LedgerClient, RemoteLedgerClient, batch_size_max
from ledger.clients.codec import pack_transfers
from ledger.errors import LedgerUnavailable
from ledger.invariants import InvariantViolation
from ledger.remote import parse_address
from ledger.remote.protocol import (
    Operation,
    ProtocolError,
    ReplyHeader,
    ReplyStatus,
    RequestHeader,
    TcpAddress,
    UnixAddress,
    encode_frame,
    frame_size_max,
    open_stream,
    raise_for_reply,
    read_frame,
    reply_decoder,
    reply_for_error,
)
from ledger.remote.server import LedgerServer, running_server
from tests.conftest import fresh_id
from tests.ledger.conformance.helpers import (
    AF,
    TF,
    A,
    T,
    account,
    account_filter,
    open_accounts,
    query_filter,
    statuses,
    transfer,
)

repo_root = Path(__file__).resolve().parents[3]
u128_max = (1 << 128) - 1
u64_max = (1 << 64) - 1
u32_max = (1 << 32) - 1
u16_max = (1 << 16) - 1
loopback_any_port = "127.0.0.1:0"
process_timeout_s = 15.0
# Only a hang reaches it: the timeouts under test are far shorter.
hang_guard_s = 30.0
server_command = (sys.executable, "-m", "ledger.remote.server")
Stamped = TypeVar("Stamped", tb.Account, tb.Transfer, tb.AccountBalance)
RemoteCall = Callable[[RemoteLedgerClient], Awaitable[Any]]


@pytest.fixture
async def server() -> AsyncIterator[LedgerServer]:
    async with running_server(journal_path=None, address=loopback_any_port) as running:
        yield running


@pytest.fixture
async def remote(server: LedgerServer) -> AsyncIterator[RemoteLedgerClient]:
    client = RemoteLedgerClient(server.address)
    try:
        yield client
    finally:
        await client.close()


# ------------------------------------------------------------------------------------------
# Every method gives what a direct EmbeddedClient gives.


def _unstamped(items: list[Stamped]) -> list[Stamped]:
    return [dataclasses.replace(item, timestamp=0) for item in items]


def _status_list(
    results: list[tb.CreateAccountResult] | list[tb.CreateTransferResult],
) -> list[int]:
    return [int(result.status) for result in results]


wallet, funding, limited, dollars = 11, 12, 13, 14


def _scenario_accounts() -> list[tb.Account]:
    return [
        tb.Account(
            id=wallet,
            ledger=978,
            code=1,
            flags=AF.DEBITS_MUST_NOT_EXCEED_CREDITS | AF.HISTORY,
            user_data_64=5,
        ),
        tb.Account(id=funding, ledger=978, code=2, flags=AF.HISTORY),
        tb.Account(id=limited, ledger=978, code=1, flags=AF.CREDITS_MUST_NOT_EXCEED_DEBITS),
        tb.Account(id=dollars, ledger=840, code=1),
        tb.Account(id=0, ledger=978, code=1),
        tb.Account(id=15, ledger=978, code=1, flags=AF.LINKED),
        tb.Account(id=16, ledger=978, code=0),
        tb.Account(id=wallet, ledger=978, code=1),
    ]


def _move(id_: int, debit: int, credit: int, amount: int, **fields: Any) -> tb.Transfer:
    return tb.Transfer(
        id=id_, debit_account_id=debit, credit_account_id=credit, amount=amount, **fields
    )


def _scenario_transfers() -> list[tb.Transfer]:
    eur = {"ledger": 978, "code": 1}
    return [
        _move(101, funding, wallet, 1_000, **eur),
        _move(102, wallet, funding, 100, flags=TF.LINKED, **eur),
        _move(103, wallet, limited, 5_000, **eur),  # Fails, and fails its chain.
        _move(104, wallet, funding, 300, flags=TF.PENDING, user_data_128=7, timeout=3_600, **eur),
        _move(105, wallet, funding, 200, flags=TF.PENDING, **eur),
        _move(106, 0, 0, 250, pending_id=104, flags=TF.POST_PENDING_TRANSFER),
        _move(107, 0, 0, 0, pending_id=105, flags=TF.VOID_PENDING_TRANSFER),
        _move(108, wallet, dollars, 1, **eur),  # Different ledgers.
        _move(109, wallet, funding, 10_000, flags=TF.BALANCING_DEBIT, **eur),
        _move(110, funding, wallet, 50, user_data_128=7, ledger=978, code=9),
        _move(106, 0, 0, 250, pending_id=104, flags=TF.POST_PENDING_TRANSFER),  # Exists.
    ]


async def _observe(client: LedgerClient) -> list[list[Any]]:
    """Run the scenario on `client`; everything it answers, timestamps aside."""
    seen: list[list[Any]] = [
        _status_list(await client.create_accounts(_scenario_accounts())),
        _status_list(await client.create_transfers(_scenario_transfers())),
        _unstamped(await client.lookup_accounts([wallet, funding, limited, dollars, 15, 99])),
        _unstamped(await client.lookup_transfers(list(range(100, 112)))),
    ]
    both = tb.AccountFilterFlags.DEBITS | tb.AccountFilterFlags.CREDITS
    for filter_ in (
        account_filter(wallet, flags=both),
        account_filter(wallet, flags=both | tb.AccountFilterFlags.REVERSED, limit=3),
        account_filter(funding, flags=tb.AccountFilterFlags.CREDITS, code=1),
        account_filter(wallet, flags=both, user_data_128=7),
    ):
        seen.append(_unstamped(await client.get_account_transfers(filter_)))
        seen.append(_unstamped(await client.get_account_balances(filter_)))
    for query in (
        query_filter(ledger=978, code=1),
        query_filter(user_data_64=5),
        query_filter(ledger=978, limit=2, flags=tb.QueryFilterFlags.REVERSED),
    ):
        seen.append(_unstamped(await client.query_accounts(query)))
    for query in (
        query_filter(user_data_128=7),
        query_filter(code=9),
        query_filter(ledger=978, limit=2, flags=tb.QueryFilterFlags.REVERSED),
    ):
        seen.append(_unstamped(await client.query_transfers(query)))
    return seen


async def test_every_method_answers_what_the_embedded_engine_answers(
    remote: RemoteLedgerClient,
) -> None:
    direct = EmbeddedClient()
    try:
        expected = await _observe(direct)
    finally:
        await direct.close()
    assert await _observe(remote) == expected
    # The scenario is not vacuous: failures, chains, two-phase transfers all took effect.
    assert [A(s).name for s in expected[0]][4:] == [
        "ID_MUST_NOT_BE_ZERO",
        "LINKED_EVENT_FAILED",
        "CODE_MUST_NOT_BE_ZERO",
        "EXISTS_WITH_DIFFERENT_FLAGS",
    ]
    assert [T(s) for s in expected[1]] == [
        T.CREATED,
        T.LINKED_EVENT_FAILED,
        T.EXCEEDS_CREDITS,
        *[T.CREATED] * 4,
        T.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER,
        T.CREATED,  # Balancing: 750, all the wallet had left.
        T.CREATED,
        T.EXISTS,
    ]
    wallet_now = await account(remote, wallet)
    assert (wallet_now.debits_pending, wallet_now.debits_posted) == (0, 250 + 750)
    assert wallet_now.credits_posted == 1_050
    assert wallet_now.timestamp > 0


# ------------------------------------------------------------------------------------------
# u128 and the other widths at their extremes.


async def test_integer_extremes_survive_the_wire(remote: RemoteLedgerClient) -> None:
    extremes: dict[str, Any] = {
        "user_data_128": u128_max,
        "user_data_64": u64_max,
        "user_data_32": u32_max,
        "ledger": u32_max,
        "code": u16_max,
    }
    debit = tb.Account(id=u128_max - 1, flags=AF.HISTORY, **extremes)
    credit = tb.Account(id=u128_max - 2, **extremes)
    at_max = tb.Account(id=u128_max, **extremes)
    assert [r.status for r in await remote.create_accounts([debit, credit, at_max])] == [
        A.CREATED,
        A.CREATED,
        A.ID_MUST_NOT_BE_INT_MAX,  # The engine saw exactly 2**128 - 1.
    ]
    moved = _move(u128_max - 3, debit.id, credit.id, u128_max, **extremes)
    assert await statuses(remote, [moved]) == [T.CREATED]

    found = await remote.lookup_accounts([debit.id, credit.id, at_max.id])
    assert _unstamped(found) == [
        dataclasses.replace(debit, debits_posted=u128_max),
        dataclasses.replace(credit, credits_posted=u128_max),
    ]
    assert _unstamped(await remote.lookup_transfers([moved.id])) == [moved]
    by_account = account_filter(
        debit.id, limit=10, **{k: extremes[k] for k in extremes if k != "ledger"}
    )
    assert _unstamped(await remote.get_account_transfers(by_account)) == [moved]
    (balance,) = await remote.get_account_balances(by_account)
    assert (balance.debits_posted, balance.credits_posted) == (u128_max, 0)
    by_query = query_filter(limit=10, **extremes)
    assert [t.id for t in await remote.query_transfers(by_query)] == [moved.id]
    assert {a.id for a in await remote.query_accounts(by_query)} == {debit.id, credit.id}


# ------------------------------------------------------------------------------------------
# Exceptions come back typed.


async def test_too_much_data_and_overflow_raise_the_engines_exceptions(
    remote: RemoteLedgerClient,
) -> None:
    too_many = batch_size_max + 1
    debit, credit = await open_accounts(remote, AF.NONE, AF.NONE)
    with pytest.raises(tb.TooMuchDataError):
        await remote.create_transfers([transfer(debit, credit, 1) for _ in range(too_many)])
    with pytest.raises(tb.TooMuchDataError):
        await remote.lookup_accounts(list(range(1, too_many + 1)))
    with pytest.raises(tb.TooMuchDataError):
        await remote.query_transfers(query_filter(limit=too_many))
    with pytest.raises(tb.IntegerOverflowError, match="cannot be negative"):
        await remote.create_transfers([transfer(debit, credit, -1)])
    with pytest.raises(tb.IntegerOverflowError):
        await remote.lookup_transfers([1 << 128])
    with pytest.raises(tb.IntegerOverflowError):
        await remote.get_account_transfers(account_filter(debit, code=1 << 16))
    # Nothing was applied, and the connection still works.
    assert (await account(remote, credit)).credits_posted == 0
    assert await statuses(remote, [transfer(debit, credit, 1)]) == [T.CREATED]


async def _raw_request(address: str, operation: Operation, payload: bytes) -> ReplyHeader:
    """One request from a client that skips every check of its own."""
    reader, writer = await open_stream(parse_address(address))
    try:
        writer.write(encode_frame(RequestHeader(request_id=7, operation=operation), payload))
        header, _ = await read_frame(reader, reply_decoder)
    finally:
        writer.close()
        await writer.wait_closed()
    assert header.request_id == 7
    return header


async def test_the_server_answers_typed_errors_to_unchecked_requests(server: LedgerServer) -> None:
    oversized = pack_transfers([transfer(1, 2, 1) for _ in range(batch_size_max + 1)])
    header = await _raw_request(server.address, Operation.CREATE_TRANSFERS, oversized)
    assert header.status is ReplyStatus.TOO_MUCH_DATA
    with pytest.raises(tb.TooMuchDataError):
        raise_for_reply(header)
    torn = await _raw_request(server.address, Operation.CREATE_ACCOUNTS, b"\x00" * 100)
    assert torn.status is ReplyStatus.INVALID_REQUEST
    with pytest.raises(InvariantViolation, match="not a multiple of 128"):
        raise_for_reply(torn)


@pytest.mark.parametrize(
    ("error", "raised"),
    [
        (tb.TooMuchDataError(), tb.TooMuchDataError),
        (tb.IntegerOverflowError("amount==-1 cannot be negative"), tb.IntegerOverflowError),
        (tb.ClientClosedError(), LedgerUnavailable),
        (OSError("journal write failed"), LedgerUnavailable),
        (ProtocolError("torn payload"), InvariantViolation),
        (InvariantViolation("engine invariant"), InvariantViolation),
    ],
    ids=["too-much-data", "overflow", "closed", "journal", "protocol", "invariant"],
)
def test_error_replies_raise_the_same_type(error: Exception, raised: type[Exception]) -> None:
    reply = reply_for_error(3, error)
    assert reply.request_id == 3
    with pytest.raises(raised) as caught:
        raise_for_reply(reply)
    if isinstance(error, tb.IntegerOverflowError):
        assert str(caught.value) == str(error)


# ------------------------------------------------------------------------------------------
# Two workers, one wallet.


async def test_two_connections_with_500_concurrent_holds_each_never_overdraw(
    server: LedgerServer,
) -> None:
    workers = [RemoteLedgerClient(server.address), RemoteLedgerClient(server.address)]
    try:
        wallet_id, funding_id = await open_accounts(
            workers[0], AF.DEBITS_MUST_NOT_EXCEED_CREDITS, AF.NONE
        )
        assert await statuses(workers[1], [transfer(funding_id, wallet_id, 60_000)]) == [T.CREATED]

        async def hold(client: RemoteLedgerClient) -> T:
            held = transfer(wallet_id, funding_id, 100, flags=TF.PENDING)
            (status,) = await statuses(client, [held])
            return status

        outcomes = await asyncio.gather(*(hold(w) for w in workers for _ in range(500)))
    finally:
        for worker in workers:
            await worker.close()
    assert outcomes.count(T.CREATED) == 600
    assert outcomes.count(T.EXCEEDS_CREDITS) == 400
    direct = RemoteLedgerClient(server.address)
    try:
        held_wallet = await account(direct, wallet_id)
    finally:
        await direct.close()
    assert (held_wallet.debits_pending, held_wallet.credits_posted) == (60_000, 60_000)
    assert server.connections_accepted == 3  # One connection per client, pipelined.


# ------------------------------------------------------------------------------------------
# The real subprocess: SIGKILL loses nothing acknowledged; SIGTERM exits 0.


def _read_ready_line(process: subprocess.Popen[bytes]) -> str:
    """Block until the server prints its ready line; return the address it bound."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    output = b""
    deadline = time.monotonic() + process_timeout_s
    while b"\n" not in output:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no ready line within {process_timeout_s}s: {output!r}"
        readable, _, _ = select.select([fd], [], [], remaining)
        chunk = os.read(fd, 4096) if readable else b""
        if readable and not chunk:
            pytest.fail(f"the server exited before it was ready ({process.wait(5)})")
        output += chunk
    match = re.search(rb"ready address=(\S+)", output)
    assert match is not None, output
    return match.group(1).decode()


@contextlib.contextmanager
def _server_process(
    directory: Path, journal: Path, address: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    with (
        (directory / "server.log").open("ab") as log,
        subprocess.Popen(
            [*server_command, "--journal", str(journal), "--address", address],
            cwd=repo_root,
            env={**os.environ, "PYTHONPATH": str(repo_root)},
            stdout=subprocess.PIPE,
            stderr=log,
        ) as process,
    ):
        try:
            yield process, _read_ready_line(process)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(process_timeout_s)


async def _write_until_killed(
    client: RemoteLedgerClient, process: subprocess.Popen[bytes], pair: tuple[int, int], wanted: int
) -> list[int]:
    """Eight concurrent writers; SIGKILL the server once `wanted` writes were acknowledged.
    Return every acknowledged id (calls in flight at the kill have an unknown outcome)."""
    acknowledged: list[int] = []

    async def write() -> None:
        while True:
            moved = transfer(*pair, 1)
            try:
                assert await statuses(client, [moved]) == [T.CREATED]
            except LedgerUnavailable:
                return
            acknowledged.append(moved.id)

    writers = [asyncio.create_task(write()) for _ in range(8)]
    deadline = time.monotonic() + process_timeout_s
    try:
        while len(acknowledged) < wanted:
            assert time.monotonic() < deadline, f"only {len(acknowledged)} acknowledged"
            await asyncio.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        assert await asyncio.to_thread(process.wait, process_timeout_s) == -signal.SIGKILL
    finally:
        await asyncio.gather(*writers)
    return acknowledged


async def _credits(client: LedgerClient, account_id: int) -> list[tb.Transfer]:
    flags = tb.AccountFilterFlags.CREDITS
    return await client.get_account_transfers(
        account_filter(account_id, limit=batch_size_max, flags=flags)
    )


async def test_a_killed_server_loses_nothing_acknowledged_and_sigterm_exits_cleanly(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "ledger.journal"
    with _server_process(tmp_path, journal, loopback_any_port) as (first, address):
        client = RemoteLedgerClient(address, timeout_ms=5_000)
        try:
            pair = (debit, credit) = await open_accounts(client, AF.NONE, AF.NONE)
            acknowledged = await _write_until_killed(client, first, (debit, credit), 300)
            with pytest.raises(LedgerUnavailable, match="cannot connect"):
                await client.lookup_accounts(list(pair))  # Nobody listens now.
            with _server_process(tmp_path, journal, address) as (second, _):
                # The same client reconnects on its next call.
                found = await client.lookup_transfers(acknowledged)
                assert [t.id for t in found] == acknowledged, "an acknowledged write was lost"
                credited = [t.id for t in await _credits(client, credit)]
                assert len(set(credited)) == len(credited)
                assert set(acknowledged) <= set(credited)
                assert (await account(client, credit)).credits_posted == len(credited)
                second.send_signal(signal.SIGTERM)  # With a client still connected.
                assert await asyncio.to_thread(second.wait, process_timeout_s) == 0
                assert second.stdout is not None
                assert b"kovra ledger server stopped" in second.stdout.read()
            with pytest.raises(LedgerUnavailable):
                await client.lookup_accounts([credit])
        finally:
            await client.close()
    # SIGTERM closed the engine: the journal is unlocked and holds every write.
    reopened = EmbeddedClient(journal)
    try:
        assert (await account(reopened, credit)).credits_posted == len(credited)
    finally:
        await reopened.close()


# ------------------------------------------------------------------------------------------
# Bounded waits and broken peers.


@contextlib.asynccontextmanager
async def _peer(
    respond: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[str]:
    """A TCP server running `respond` per connection, on an ephemeral loopback port."""
    handled: list[asyncio.Event] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        done = asyncio.Event()
        handled.append(done)
        try:
            await respond(reader, writer)
        finally:
            writer.close()
            done.set()

    peer = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{peer.sockets[0].getsockname()[1]}"
    finally:
        peer.close()
        await peer.wait_closed()
        async with asyncio.timeout(5):
            for done in handled:
                await done.wait()


async def _swallow(reader: asyncio.StreamReader, _: asyncio.StreamWriter) -> None:
    while await reader.read(1 << 16):
        pass  # Read everything, answer nothing.


async def _answer_oversized(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(1 << 16)
    writer.write(struct.pack("<I", frame_size_max + 1))
    await writer.drain()
    await reader.read()


async def test_a_server_that_never_answers_is_unavailable_after_the_timeout() -> None:
    """The client's own timeout ends the call: without it, only the outer guard would."""
    async with _peer(_swallow) as address:
        client = RemoteLedgerClient(address, timeout_ms=200)
        try:
            async with asyncio.timeout(hang_guard_s):
                with pytest.raises(LedgerUnavailable, match="did not answer within 200 ms"):
                    await client.create_transfers([transfer(1, 2, 1)])
        finally:
            await client.close()


async def test_an_oversized_reply_breaks_the_connection() -> None:
    async with _peer(_answer_oversized) as address:
        client = RemoteLedgerClient(address, timeout_ms=5_000)
        try:
            with pytest.raises(LedgerUnavailable, match="exceeds the maximum"):
                await client.lookup_accounts([1])
        finally:
            await client.close()


async def test_an_oversized_request_frame_is_refused(
    server: LedgerServer, remote: RemoteLedgerClient
) -> None:
    reader, writer = await open_stream(parse_address(server.address))
    try:
        writer.write(struct.pack("<I", frame_size_max + 1) + b"\x00" * 64)
        async with asyncio.timeout(5):
            assert await reader.read() == b""  # The server hung up.
    finally:
        writer.close()
        await writer.wait_closed()
    assert await remote.lookup_accounts([1]) == []  # Other connections are unaffected.


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_refused_connection_is_unavailable() -> None:
    client = RemoteLedgerClient(f"127.0.0.1:{_free_port()}", timeout_ms=2_000)
    try:
        with pytest.raises(LedgerUnavailable, match="cannot connect"):
            await client.lookup_accounts([1])
    finally:
        await client.close()


closed_calls: dict[str, RemoteCall] = {
    "create_accounts": lambda c: c.create_accounts([tb.Account(id=1, ledger=978, code=1)]),
    "create_transfers": lambda c: c.create_transfers([transfer(1, 2, 1)]),
    "lookup_accounts": lambda c: c.lookup_accounts([1]),
    "lookup_transfers": lambda c: c.lookup_transfers([1]),
    "get_account_transfers": lambda c: c.get_account_transfers(account_filter(1)),
    "get_account_balances": lambda c: c.get_account_balances(account_filter(1)),
    "query_accounts": lambda c: c.query_accounts(query_filter()),
    "query_transfers": lambda c: c.query_transfers(query_filter()),
}


@pytest.mark.parametrize("call", closed_calls.values(), ids=closed_calls.keys())
async def test_a_closed_client_is_unavailable(server: LedgerServer, call: RemoteCall) -> None:
    client = RemoteLedgerClient(server.address)
    assert await client.lookup_accounts([fresh_id()]) == []
    await client.close()
    await client.close()  # Idempotent.
    with pytest.raises(LedgerUnavailable, match="closed"):
        await call(client)


async def test_closing_fails_calls_in_flight() -> None:
    async with _peer(_swallow) as address:
        client = RemoteLedgerClient(address, timeout_ms=5_000)
        pending = asyncio.create_task(client.lookup_accounts([1]))
        await asyncio.sleep(0.05)
        await client.close()
        with pytest.raises(LedgerUnavailable, match="client was closed"):
            await pending


# ------------------------------------------------------------------------------------------
# Addresses.


async def test_a_unix_socket_serves_too(tmp_path: Path) -> None:
    path = tmp_path / "l.sock"
    async with running_server(journal_path=None, address=f"unix:{path}") as unix_server:
        assert unix_server.address == f"unix:{path}"
        client = RemoteLedgerClient(unix_server.address)
        try:
            await open_accounts(client, AF.NONE)
        finally:
            await client.close()
    assert not path.exists()


def test_addresses_parse_and_bad_ones_are_refused() -> None:
    assert parse_address("127.0.0.1:3300") == TcpAddress(host="127.0.0.1", port=3300)
    assert parse_address("[::1]:3300") == TcpAddress(host="::1", port=3300)
    assert parse_address("unix:/run/kovra.sock") == UnixAddress(path="/run/kovra.sock")
    for bad in ("", "3300", "127.0.0.1", "127.0.0.1:port", "127.0.0.1:70000", "unix:"):
        with pytest.raises(ValueError, match="KOVRA_LEDGER_ADDRESS"):
            parse_address(bad)
    environment = {"KOVRA_LEDGER_ADDRESS": "localhost:3300", "KOVRA_LEDGER_TIMEOUT_MS": "250"}
    assert RemoteLedgerClient.from_environment(environment).address == "localhost:3300"
    with pytest.raises(ValueError, match="KOVRA_LEDGER_TIMEOUT_MS"):
        RemoteLedgerClient.from_environment({**environment, "KOVRA_LEDGER_TIMEOUT_MS": "0"})
    with pytest.raises(ValueError, match="KOVRA_LEDGER_ADDRESS is not set"):
        RemoteLedgerClient.from_environment({})


async def test_the_server_listens_on_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback"):
        async with running_server(journal_path=None, address="0.0.0.0:0"):
            pass
