"""How every list in Kovra pages: one model of a page request and of a page, one rule for the
next cursor, and one keyset query for the lists Postgres answers.

A list is ordered by a unique key, and a page starts after the key its cursor names (keyset
paging, not OFFSET): pages never overlap, and a deep page costs what the first one does, an
index seek. Lists page by one of two kinds of key:

- a position, (created_at, id): transfers, events, webhook endpoints, compliance cases. Its
  cursor is `<microseconds since the epoch>_<uuid hex>`. Integers, not floats: a float of
  seconds cannot hold every microsecond of a current timestamp, and a cursor that rounds can
  skip or repeat a row.
- a number: a row id (tenants, API keys), a ledger timestamp in nanoseconds (statements, whose
  order TigerBeetle keeps), or a batch item's index. Its cursor is the number in decimal.

Clients keep cursors, so these formats never change. A batch's items are numbered and their
count is known, so they page by index (`index_page`); every other list uses `keyset_page`.
"""

from __future__ import annotations

import datetime
import re
import uuid
from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar

import asyncpg
import msgspec

from gateway.http.ids import row_id_max
from gateway.http.problems import FieldError, ProblemError, invalid
from ledger.invariants import ensure

Key = TypeVar("Key")
Item = TypeVar("Item")
Mapped = TypeVar("Mapped")

Position = tuple[datetime.datetime, uuid.UUID]
# Digits of the largest u64 (a ledger timestamp in ns, a tenant or key id).
number_cursor_length_max = 20

_epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_parameter = re.compile(r"\$(\d+)")
# The cursors each kind writes, exactly; the OpenAPI document publishes these patterns.
position_cursor_pattern = r"^[0-9]{1,20}_[0-9a-f]{32}$"
number_cursor_pattern = f"^[0-9]{{1,{number_cursor_length_max}}}$"
_position_cursor = re.compile(position_cursor_pattern)
position_cursor_schema = {"type": "string", "pattern": position_cursor_pattern}
number_cursor_schema = {"type": "string", "pattern": number_cursor_pattern}


def limit_schema(limit_max: int) -> dict[str, int | str]:
    """The `limit` query parameter of a list whose pages hold at most `limit_max` items
    (`page_limit_or_422` refuses the rest)."""
    return {"type": "integer", "minimum": 1, "maximum": limit_max}


def cursor_not_ours() -> ProblemError:
    """The problem for a cursor not of the list's form (its pattern), naming it."""
    return invalid(
        "cursor",
        detail="cursor is not one Kovra returned",
        message="use next_cursor from the previous page",
    )


def cursor_out_of_range() -> ProblemError:
    """The problem for a cursor of the list's form that names no place Kovra could have
    written (a timestamp past the year 9999, an index past a batch's largest): the pattern
    the document publishes cannot say that, so it is a code of its own."""
    return ProblemError(
        422,
        "cursor_out_of_range",
        "cursor names no place in this list",
        errors=[FieldError(field="cursor", message="use next_cursor from the previous page")],
    )


def page_limit_or_422(limit: int, *, limit_max: int) -> int:
    """`limit` when it is a page size the list allows, else a 422 naming `limit`."""
    if not 0 < limit <= limit_max:
        raise invalid(
            "limit", detail="limit is out of range", message=f"must be between 1 and {limit_max}"
        )
    return limit


class CursorKind(Protocol[Key]):
    """A kind of key a list is ordered by: how a cursor writes it and, for the lists Postgres
    answers, which columns of a row hold it and their types."""

    @property
    def columns(self) -> tuple[str, ...]: ...

    @property
    def column_types(self) -> tuple[str, ...]: ...

    def encode(self, key: Key) -> str: ...

    def decode(self, cursor: str) -> Key:
        """The key a cursor names, or a 422 naming the cursor."""
        ...

    def key_of(self, record: asyncpg.Record) -> Key: ...

    def values(self, key: Key) -> tuple[object, ...]:
        """The key as query parameters, one per column."""
        ...


class PositionCursors(msgspec.Struct, frozen=True):
    """(created_at, id) keys: the lists of things created over time."""

    columns: tuple[str, ...] = ("created_at", "id")
    column_types: tuple[str, ...] = ("timestamptz", "uuid")

    def encode(self, key: Position) -> str:
        created_at, object_id = key
        microseconds = (created_at - _epoch) // datetime.timedelta(microseconds=1)
        return f"{microseconds}_{object_id.hex}"

    def decode(self, cursor: str) -> Position:
        # Only what `encode` writes: `uuid.UUID` alone would also read braces and hyphens,
        # and `int` signs and spaces, which the published pattern does not allow.
        if _position_cursor.fullmatch(cursor) is None:
            raise cursor_not_ours()
        try:
            microseconds, _, identifier = cursor.partition("_")
            return (
                _epoch + datetime.timedelta(microseconds=int(microseconds)),
                uuid.UUID(hex=identifier),
            )
        except (ValueError, OverflowError):
            raise cursor_out_of_range() from None

    def key_of(self, record: asyncpg.Record) -> Position:
        return (record["created_at"], record["id"])

    def values(self, key: Position) -> tuple[object, ...]:
        return key


class NumberCursors(msgspec.Struct, frozen=True, kw_only=True):
    """Number keys, at most `value_max` when the list has a largest one (a batch's last item)."""

    value_max: int | None = None
    columns: tuple[str, ...] = ("id",)
    column_types: tuple[str, ...] = ("bigint",)

    def encode(self, key: int) -> str:
        return str(key)

    def decode(self, cursor: str) -> int:
        if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > number_cursor_length_max:
            raise cursor_not_ours()
        number = int(cursor)
        if self.value_max is not None and number > self.value_max:
            raise cursor_out_of_range()
        return number

    def key_of(self, record: asyncpg.Record) -> int:
        key: int = record[self.columns[0]]
        return key

    def values(self, key: int) -> tuple[object, ...]:
        return (key,)


positions = PositionCursors()
numbers = NumberCursors()
# Postgres `bigint` ids (tenants, API keys), and TigerBeetle's u64 timestamps (statements).
row_ids = NumberCursors(value_max=row_id_max)
ledger_timestamps = NumberCursors(value_max=2**64 - 1)


class Page(msgspec.Struct, Generic[Item], frozen=True, kw_only=True):
    """A page of a list, and the cursor of the page after it (None: this is the last)."""

    items: list[Item]
    next_cursor: str | None

    def map(self, view: Callable[[Item], Mapped]) -> Page[Mapped]:
        """The same page with `view` of each item."""
        return Page(items=[view(item) for item in self.items], next_cursor=self.next_cursor)


class PageRequest(msgspec.Struct, Generic[Key], frozen=True, kw_only=True):
    """Which page a client asked for: at most `limit` items (within the list's maximum),
    starting where `cursor` says (None: at the beginning), a key of `kind`."""

    limit: int
    cursor: Key | None
    kind: CursorKind[Key]

    def following(self, next_cursor: str | None) -> PageRequest[Key] | None:
        """The request for the page after the one this request answered, given that page's
        `next_cursor`; None after the last page."""
        if next_cursor is None:
            return None
        return PageRequest(limit=self.limit, cursor=self.kind.decode(next_cursor), kind=self.kind)


def page_request(
    kind: CursorKind[Key], *, limit: int, cursor: str | None, limit_max: int
) -> PageRequest[Key]:
    """A client's page request from its query parameters, or a 422 naming `limit` (checked
    first) or `cursor`."""
    page_limit_or_422(limit, limit_max=limit_max)
    return PageRequest(
        limit=limit, cursor=None if cursor is None else kind.decode(cursor), kind=kind
    )


def keyset_page(
    items: Sequence[Item], request: PageRequest[Key], *, key: Callable[[Item], Key]
) -> Page[Item]:
    """The keyset rule, for every list ordered by a key: a full page may have items after
    it, and the next page starts after its last item's key; a shorter page is the last. A
    list that ends exactly at a page's end costs the client one more, empty, page: knowing
    without it would take a count or an extra row on every page."""
    full = len(items) == request.limit
    return Page(
        items=list(items), next_cursor=request.kind.encode(key(items[-1])) if full else None
    )


def index_page(items: list[Item], request: PageRequest[int], *, count: int) -> Page[Item]:
    """The rule for a list of `count` numbered items (a batch's): the cursor is the index a
    page starts at, and the next page starts where this one ends while any item is left."""
    end = (request.cursor or 0) + request.limit
    return Page(items=items, next_cursor=request.kind.encode(end) if end < count else None)


class KeysetQuery(Generic[Key]):
    """A Postgres list's query: its SELECT, whose last clause is its WHERE (filters numbered
    $1 .. $n), followed by the page's keyset condition, order and limit.

    The first page passes NULL for the key, so one statement text serves every page and
    asyncpg prepares it once. `table` qualifies the key's columns when the SELECT joins.
    """

    def __init__(self, select: str, *, kind: CursorKind[Key], table: str | None = None) -> None:
        self.kind = kind
        self.filter_count = max((int(place) for place in _parameter.findall(select)), default=0)
        columns = ", ".join(f"{table}.{column}" if table else column for column in kind.columns)
        keys = [
            f"${self.filter_count + place}::{column_type}"
            for place, column_type in enumerate(kind.column_types, start=1)
        ]
        limit = f"${self.filter_count + len(keys) + 1}"
        self.sql = (
            f"{select.rstrip()}\n   AND ({keys[0]} IS NULL OR ({columns}) > ({', '.join(keys)}))"
            f"\n ORDER BY {columns} LIMIT {limit}"
        )

    async def page(
        self,
        pool: asyncpg.Pool,
        request: PageRequest[Key],
        *filters: object,
        row: Callable[[asyncpg.Record], Mapped],
    ) -> Page[Mapped]:
        """The requested page, each record made a row by `row`."""
        ensure(request.kind == self.kind, "a page request of the query's kind of key")
        ensure(len(filters) == self.filter_count, "one value per filter of the query")
        cursor = request.cursor
        after = (None,) * len(self.kind.columns) if cursor is None else self.kind.values(cursor)
        records = await pool.fetch(self.sql, *filters, *after, request.limit)
        return keyset_page(records, request, key=self.kind.key_of).map(row)
