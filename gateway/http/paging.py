"""Page cursors over (created_at, id): opaque to clients, exact to the microsecond.

A cursor is `<microseconds since the epoch>_<uuid hex>`. Integers, not floats: a float of
seconds cannot hold every microsecond of a current timestamp, and a cursor that rounds can
skip or repeat a row.
"""

from __future__ import annotations

import datetime
import uuid

from gateway.http.problems import FieldError, ProblemError

_epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)

Position = tuple[datetime.datetime, uuid.UUID]
# Digits of the largest u64 (a ledger timestamp in ns, a tenant or key id).
number_cursor_length_max = 20


def encode_cursor(created_at: datetime.datetime, object_id: uuid.UUID) -> str:
    microseconds = (created_at - _epoch) // datetime.timedelta(microseconds=1)
    return f"{microseconds}_{object_id.hex}"


def decode_cursor(cursor: str | None) -> Position | None:
    """The position after which the next page starts, or a 422 naming the cursor."""
    if cursor is None:
        return None
    try:
        microseconds, _, identifier = cursor.partition("_")
        return (
            _epoch + datetime.timedelta(microseconds=int(microseconds)),
            uuid.UUID(hex=identifier),
        )
    except (ValueError, OverflowError):
        raise cursor_not_ours() from None


def decode_number_cursor(cursor: str | None) -> int | None:
    """A cursor that is a number (a ledger timestamp, a row id): where the next page starts,
    None for the first page, or a 422 naming the cursor."""
    if cursor is None:
        return None
    if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > number_cursor_length_max:
        raise cursor_not_ours()
    return int(cursor)


def cursor_not_ours() -> ProblemError:
    """The problem for a cursor Kovra did not make, naming it."""
    return ProblemError(
        422,
        "validation_error",
        "cursor is not one Kovra returned",
        errors=[FieldError(field="cursor", message="use next_cursor from the previous page")],
    )


def page_limit_or_422(limit: int, *, limit_max: int) -> int:
    if not 0 < limit <= limit_max:
        raise ProblemError(
            422,
            "validation_error",
            "limit is out of range",
            errors=[FieldError(field="limit", message=f"must be between 1 and {limit_max}")],
        )
    return limit
