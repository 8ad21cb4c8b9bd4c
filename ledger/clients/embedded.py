"""`EmbeddedClient`: the embedded engine behind `tigerbeetle.ClientAsync`'s interface.

Like the native client, it batches: every request submitted during one turn of the event
loop is executed together, and their journal records go to disk in one write before any of
them is answered. It raises what the native client raises (`TooMuchDataError` above the
batch maximum, `IntegerOverflowError` for fields out of range, `ClientClosedError` after
`close`), so code and tests cannot tell the two apart.

It lives in one process: `kovra serve --workers N>1` must use a real cluster instead.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tigerbeetle as tb

from ledger.clients.base import batch_size_max
from ledger.clients.codec import (
    account_fields,
    account_filter_fields,
    pack_accounts,
    pack_transfers,
    query_filter_fields,
    transfer_fields,
    unpack_accounts,
    unpack_transfers,
    validate,
    validate_ids,
)
from ledger.embedded.engine import Engine
from ledger.embedded.journal import Journal, JournalOperation, encode_record
from ledger.invariants import ensure, unreachable
from ledger.turn_batching import TurnBatcher


class _Request:
    __slots__ = ("future", "operation", "payload")

    def __init__(self, operation: str, payload: Any, future: asyncio.Future[Any]) -> None:
        self.operation = operation
        self.payload = payload
        self.future = future


class EmbeddedClient:
    """An in-process TigerBeetle with the async client interface, journaled to `journal_path`.

    Without a path the ledger lives in memory only. `fsync=True` makes every batch durable
    against power loss, not just against the process dying; `clock_ns` exists for tests.
    """

    def __init__(
        self,
        journal_path: str | os.PathLike[str] | None = None,
        *,
        fsync: bool = False,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._engine = Engine()
        self._clock_ns = clock_ns
        self._journal: Journal | None = None
        if journal_path is not None:
            self._journal = Journal(Path(journal_path), fsync=fsync)
            try:
                self._replay(self._journal)
            except BaseException:
                self._journal.close()  # Release the file and its lock; the start is refused.
                raise
        self._prepare_timestamp = self._engine.commit_timestamp
        self._turn: TurnBatcher[_Request] = TurnBatcher(self._drain)
        self._closed = False

    @property
    def engine(self) -> Engine:
        """The state machine itself, for invariant checks in tests."""
        return self._engine

    def _replay(self, journal: Journal) -> None:
        for record in journal.read():
            match record.operation:
                case JournalOperation.CREATE_ACCOUNTS:
                    self._engine.create_accounts(record.timestamp, unpack_accounts(record.payload))
                case JournalOperation.CREATE_TRANSFERS:
                    self._engine.create_transfers(
                        record.timestamp, unpack_transfers(record.payload)
                    )
                case JournalOperation.EXPIRE_PENDING_TRANSFERS:
                    self._engine.expire_pending_transfers(record.timestamp)
                case _:
                    unreachable(f"unknown journal operation {record.operation!r}")

    # ----------------------------------------------------------------------------------
    # The `tigerbeetle.ClientAsync` interface.

    async def create_accounts(self, accounts: list[tb.Account]) -> list[tb.CreateAccountResult]:
        self._check_batch(len(accounts))
        for account in accounts:
            validate(account, account_fields)
        return await self._submit("create_accounts", list(accounts))  # type: ignore[no-any-return]

    async def create_transfers(self, transfers: list[tb.Transfer]) -> list[tb.CreateTransferResult]:
        self._check_batch(len(transfers))
        for transfer in transfers:
            validate(transfer, transfer_fields)
        return await self._submit("create_transfers", list(transfers))  # type: ignore[no-any-return]

    async def lookup_accounts(self, accounts: list[int]) -> list[tb.Account]:
        self._check_batch(len(accounts))
        validate_ids(accounts)
        return await self._submit("lookup_accounts", list(accounts))  # type: ignore[no-any-return]

    async def lookup_transfers(self, transfers: list[int]) -> list[tb.Transfer]:
        self._check_batch(len(transfers))
        validate_ids(transfers)
        return await self._submit("lookup_transfers", list(transfers))  # type: ignore[no-any-return]

    async def get_account_transfers(self, filter: tb.AccountFilter) -> list[tb.Transfer]:  # noqa: A002
        self._check_batch(filter.limit)
        validate(filter, account_filter_fields)
        return await self._submit("get_account_transfers", filter)  # type: ignore[no-any-return]

    async def get_account_balances(
        self,
        filter: tb.AccountFilter,  # noqa: A002
    ) -> list[tb.AccountBalance]:
        self._check_batch(filter.limit)
        validate(filter, account_filter_fields)
        return await self._submit("get_account_balances", filter)  # type: ignore[no-any-return]

    async def query_accounts(self, query_filter: tb.QueryFilter) -> list[tb.Account]:
        self._check_batch(query_filter.limit)
        validate(query_filter, query_filter_fields)
        return await self._submit("query_accounts", query_filter)  # type: ignore[no-any-return]

    async def query_transfers(self, query_filter: tb.QueryFilter) -> list[tb.Transfer]:
        self._check_batch(query_filter.limit)
        validate(query_filter, query_filter_fields)
        return await self._submit("query_transfers", query_filter)  # type: ignore[no-any-return]

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._turn.flush_now()
        if self._journal is not None:
            self._journal.close()

    # ----------------------------------------------------------------------------------
    # Batching and execution.

    def _check_batch(self, count: int) -> None:
        if self._closed:
            raise tb.ClientClosedError()
        if count > batch_size_max:
            raise tb.TooMuchDataError()

    def _submit(self, operation: str, payload: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._turn.add(_Request(operation, payload, future))
        return future

    def _next_timestamp(self, now_ns: int, delta: int) -> int:
        """TigerBeetle's prepare timestamp: wall-clock time, but never backwards."""
        self._prepare_timestamp = max(self._prepare_timestamp, now_ns) + max(delta, 1)
        return self._prepare_timestamp

    def _drain(self, requests: list[_Request]) -> None:
        records: list[bytes] = []
        now_ns = self._clock_ns()
        expiry_ns = self._engine.next_expiry_ns()
        if expiry_ns is not None and expiry_ns <= now_ns:
            timestamp = self._next_timestamp(now_ns, batch_size_max)
            self._engine.expire_pending_transfers(timestamp)
            records.append(encode_record(JournalOperation.EXPIRE_PENDING_TRANSFERS, timestamp, b""))
        try:
            results = [self._execute(request, now_ns, records) for request in requests]
            if self._journal is not None and records:
                self._journal.append(b"".join(records))
        except Exception as error:
            # A failed journal write leaves the engine holding state a restart would forget,
            # and an engine invariant failure leaves it in doubt: answering either way could
            # acknowledge money that is not there. Fail everything and refuse further use.
            self._closed = True
            for request in requests:
                if not request.future.done():
                    request.future.set_exception(error)
            return
        for request, result in zip(requests, results, strict=True):
            if not request.future.done():
                request.future.set_result(result)

    def _execute(self, request: _Request, now_ns: int, records: list[bytes]) -> Any:
        engine = self._engine
        match request.operation:
            case "create_accounts":
                timestamp = self._next_timestamp(now_ns, len(request.payload))
                records.append(
                    encode_record(
                        JournalOperation.CREATE_ACCOUNTS, timestamp, pack_accounts(request.payload)
                    )
                )
                return engine.create_accounts(timestamp, request.payload)
            case "create_transfers":
                timestamp = self._next_timestamp(now_ns, len(request.payload))
                records.append(
                    encode_record(
                        JournalOperation.CREATE_TRANSFERS,
                        timestamp,
                        pack_transfers(request.payload),
                    )
                )
                return engine.create_transfers(timestamp, request.payload)
            case "lookup_accounts":
                return engine.lookup_accounts(request.payload)
            case "lookup_transfers":
                return engine.lookup_transfers(request.payload)
            case "get_account_transfers":
                return engine.get_account_transfers(request.payload)
            case "get_account_balances":
                return engine.get_account_balances(request.payload)
            case "query_accounts":
                return engine.query_accounts(request.payload)
            case "query_transfers":
                return engine.query_transfers(request.payload)
            case _:
                unreachable(f"unknown operation {request.operation!r}")


ensure(batch_size_max == 8189, "TigerBeetle's batch maximum")
