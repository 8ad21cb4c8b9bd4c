"""Group concurrent inserts into one statement per table.

Many requests in flight each want to write one row. Instead of one round trip per row,
`BatchWriter` collects the rows submitted during one turn of the event loop
(`ledger.turn_batching`) and writes them with a single
`INSERT ... SELECT * FROM unnest($1::row_type[])` per statement, then answers every waiter.
The rows travel as one array of a composite row type (`row_type`, created by a migration
with exactly the statement's columns), not as one array per column: asyncpg checks every
element of a column array for nested containers through `collections.abc`, two checks per
text value, where a row's fields are encoded straight away.
Batches are bounded by `batch_size_max`; a failed statement fails the waiters of that batch
only, so the caller can answer their requests with an error and nothing is half-written.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Coroutine, Iterable, Sequence
from typing import Any

import asyncpg
import msgspec

from ledger.invariants import ensure
from ledger.turn_batching import TurnBatcher

batch_size_max = 1_000
pending_rows_max = 50_000
# How long a batch waits for a pooled connection before its rows are shed (WriterOverloaded).
# Unbounded, a write could wait past the reconciler's delay (30 s) and find its transfer id
# already claimed by the reconciler: a request must be over, one way or the other, by then.
acquire_timeout_seconds = 5.0


class BatchStatement(msgspec.Struct, frozen=True, kw_only=True):
    """An insert whose rows arrive one at a time: `table`, its columns and their SQL types,
    the composite type that carries one row (`row_type`: the same columns and types, in
    order, made by a migration), and what to do on conflict (e.g. `ON CONFLICT DO NOTHING`
    for idempotent writes)."""

    table: str
    columns: tuple[str, ...]
    types: tuple[str, ...]
    row_type: str
    on_conflict: str = ""

    def sql(self, *, parameter: int = 1) -> str:
        """The insert of the rows in the array parameter `$parameter`."""
        ensure(len(self.columns) == len(self.types), "one type per column")
        columns = ", ".join(self.columns)
        # Table, column and type names are constants of this module's callers, never input.
        return (
            f"INSERT INTO {self.table} ({columns}) "  # noqa: S608
            f"SELECT * FROM unnest(${parameter}::{self.row_type}[]) {self.on_conflict}"
        ).strip()


# A row waiting for its batch: its statement, its values, and its waiter.
_Row = tuple["BatchStatement", tuple[Any, ...], "asyncio.Future[None]"]
# Rows written together, and their one waiter.
_Group = tuple[list[tuple["BatchStatement", tuple[Any, ...]]], "asyncio.Future[None]"]


@functools.cache
def combined_sql(statements: tuple[BatchStatement, ...]) -> str:
    """Several inserts as one statement: all but the last as data-modifying CTEs. One
    statement is one round trip and is atomic by itself, so a group of tables needs no
    BEGIN and COMMIT of its own."""
    parts = [statement.sql(parameter=index) for index, statement in enumerate(statements, 1)]
    if len(parts) == 1:
        return parts[0]
    ctes = ", ".join(f"insert_{index} AS ({part})" for index, part in enumerate(parts[:-1]))
    return f"WITH {ctes} {parts[-1]}"


def _answer(futures: Iterable[asyncio.Future[None]], error: Exception | None) -> None:
    """Tell every waiter still waiting (a cancelled one has gone) its batch failed, or not."""
    for future in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


class WriterOverloaded(RuntimeError):
    """More rows are queued or in flight than `pending_rows_max`, or no connection came
    within `acquire_timeout_seconds`: shed load, don't grow. Nothing of the rows was sent."""


class BatchWriter:
    """Coalesces rows per statement and writes each batch in one round trip."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        batch_size_limit: int = batch_size_max,
        acquire_timeout_limit_seconds: float = acquire_timeout_seconds,
    ) -> None:
        ensure(0 < batch_size_limit <= batch_size_max, "batch size within bounds")
        ensure(0 < acquire_timeout_limit_seconds <= acquire_timeout_seconds, "a bounded wait")
        self._pool = pool
        self._acquire_timeout_seconds = acquire_timeout_limit_seconds
        self._batch_size_limit = batch_size_limit
        # Rows and groups of one turn; each flush splits them by `batch_size_limit`.
        self._rows: TurnBatcher[_Row] = TurnBatcher(self._flush_rows)
        self._groups: TurnBatcher[_Group] = TurnBatcher(self._flush_groups)
        self._pending_count = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def write(self, statement: BatchStatement, row: Sequence[Any]) -> None:
        """Insert `row`; returns once the batch holding it is committed."""
        ensure(len(row) == len(statement.columns), "one value per column")
        if self._pending_count >= pending_rows_max:
            raise WriterOverloaded(f"{self._pending_count} rows are already waiting")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._rows.add((statement, tuple(row), future))
        self._pending_count += 1
        await future

    def _flush_rows(self, rows: list[_Row]) -> None:
        by_statement: dict[BatchStatement, list[_Row]] = {}
        for pending in rows:
            by_statement.setdefault(pending[0], []).append(pending)
        for statement, statement_rows in by_statement.items():
            for start in range(0, len(statement_rows), self._batch_size_limit):
                batch = statement_rows[start : start + self._batch_size_limit]
                self._start(self._write_batch(statement, batch))

    def _start(self, write: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(write)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write_batch(self, statement: BatchStatement, batch: list[_Row]) -> None:
        try:
            await self._execute(statement.sql(), [row for _, row, _ in batch])
        except Exception as error:
            _answer((future for _, _, future in batch), error)
        else:
            _answer((future for _, _, future in batch), None)
        finally:
            self._pending_count -= len(batch)

    async def write_together(self, rows: Sequence[tuple[BatchStatement, Sequence[Any]]]) -> None:
        """Insert several rows (e.g. a state and its outbox event) atomically.

        Every group submitted during one turn of the event loop is written by one
        statement (one insert per table, joined as CTEs): all of them commit, or none does.
        """
        ensure(bool(rows), "a group has at least one row")
        for statement, row in rows:
            ensure(len(row) == len(statement.columns), "one value per column")
        if self._pending_count >= pending_rows_max:
            raise WriterOverloaded(f"{self._pending_count} rows are already waiting")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._groups.add(([(s, tuple(r)) for s, r in rows], future))
        self._pending_count += len(rows)
        await future

    def _flush_groups(self, groups: list[_Group]) -> None:
        for start in range(0, len(groups), self._batch_size_limit):
            self._start(self._write_groups(groups[start : start + self._batch_size_limit]))

    async def _write_groups(self, groups: list[_Group]) -> None:
        by_statement: dict[BatchStatement, list[tuple[Any, ...]]] = {}
        for rows, _ in groups:
            for statement, row in rows:
                by_statement.setdefault(statement, []).append(row)
        try:
            await self._execute(combined_sql(tuple(by_statement)), *by_statement.values())
        except Exception as error:
            _answer((future for _, future in groups), error)
        else:
            _answer((future for _, future in groups), None)
        finally:
            self._pending_count -= sum(len(rows) for rows, _ in groups)

    async def _execute(self, sql: str, *arguments: Any) -> None:
        """One statement on a pooled connection, waiting a bounded time for the connection."""
        try:
            connection = await self._pool.acquire(timeout=self._acquire_timeout_seconds)
        except TimeoutError as error:
            raise WriterOverloaded(
                f"no database connection within {self._acquire_timeout_seconds} s"
            ) from error
        try:
            await connection.execute(sql, *arguments)
        finally:
            await self._pool.release(connection)

    async def drain(self) -> None:
        """Wait until every row submitted so far is written (used at shutdown)."""
        while self._rows.scheduled or self._groups.scheduled or self._tasks:
            if self._rows.scheduled or self._groups.scheduled:
                await asyncio.sleep(0)
                continue
            await asyncio.gather(*self._tasks, return_exceptions=True)
