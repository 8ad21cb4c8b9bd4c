"""Page cursors are exact: any timestamp (to the microsecond) and id come back unchanged,
and a cursor Kovra did not make is a 422 naming `cursor`, never a crash; so are the number
cursors (ledger timestamps, row ids, batch item indexes) of statements, the admin lists and
batches. A cursor a client already holds keeps working: the formats are pinned. Every list
follows one keyset rule (a full page has a next cursor, the key of its last item; a short
page is the last), batches one index rule, and every Postgres list one query shape."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.http.paging import (
    CursorKind,
    KeysetQuery,
    NumberCursors,
    Page,
    PageRequest,
    index_page,
    keyset_page,
    ledger_timestamps,
    numbers,
    page_limit_or_422,
    page_request,
    positions,
    row_ids,
)
from gateway.http.problems import ProblemError


@given(
    moment=st.datetimes(
        min_value=datetime.datetime(2000, 1, 1),
        max_value=datetime.datetime(2200, 1, 1),
        timezones=st.just(datetime.UTC),
    ),
    object_id=st.uuids(),
)
def test_a_cursor_round_trips_to_the_microsecond(
    moment: datetime.datetime, object_id: uuid.UUID
) -> None:
    assert positions.decode(positions.encode((moment, object_id))) == (moment, object_id)


def test_the_cursor_formats_clients_hold_do_not_change() -> None:
    moment = datetime.datetime(2024, 5, 17, 9, 30, 15, 123456, tzinfo=datetime.UTC)
    object_id = uuid.UUID("0123456789abcdef0123456789abcdef")
    cursor = "1715938215123456_0123456789abcdef0123456789abcdef"
    assert positions.encode((moment, object_id)) == cursor
    assert positions.decode(cursor) == (moment, object_id)
    assert numbers.encode(1715938215123456789) == "1715938215123456789"
    assert numbers.decode("1715938215123456789") == 1715938215123456789


@pytest.mark.parametrize(
    "cursor", ["", "abc", "12_xyz", "1.5_" + "0" * 32, "9" * 400 + "_" + "0" * 32]
)
def test_a_foreign_cursor_is_refused_naming_it(cursor: str) -> None:
    with pytest.raises(ProblemError) as raised:
        page_request(positions, limit=10, cursor=cursor, limit_max=10)
    assert raised.value.status == 422
    assert raised.value.errors[0].field == "cursor"


@pytest.mark.parametrize("cursor", ["", "-1", "1.5", "abc", "\u0663", "1" * 21])
def test_a_foreign_number_cursor_is_refused_naming_it(cursor: str) -> None:
    with pytest.raises(ProblemError) as raised:
        page_request(numbers, limit=10, cursor=cursor, limit_max=10)
    assert raised.value.status == 422
    assert raised.value.errors[0].field == "cursor"


@given(number=st.integers(min_value=0, max_value=(1 << 64) - 1))
def test_a_number_cursor_round_trips(number: int) -> None:
    assert page_request(numbers, limit=1, cursor=str(number), limit_max=1).cursor == number
    assert page_request(numbers, limit=1, cursor=None, limit_max=1).cursor is None


def test_a_number_past_the_last_one_is_refused() -> None:
    indexes = NumberCursors(value_max=9_999)
    assert indexes.decode("9999") == 9_999
    with pytest.raises(ProblemError) as raised:
        indexes.decode("10000")
    assert raised.value.errors[0].field == "cursor"


def test_limits_outside_the_page_size_are_refused() -> None:
    assert page_limit_or_422(10, limit_max=10) == 10
    for limit in (0, 11):
        with pytest.raises(ProblemError) as raised:
            page_limit_or_422(limit, limit_max=10)
        assert raised.value.errors[0].field == "limit"
        with pytest.raises(ProblemError) as raised:
            page_request(positions, limit=limit, cursor="not ours", limit_max=10)
        assert raised.value.errors[0].field == "limit"  # The limit is named first.


def test_a_full_page_continues_after_its_last_key_and_a_short_one_is_the_last() -> None:
    request = PageRequest(limit=3, cursor=None, kind=numbers)
    full = keyset_page([10, 20, 30], request, key=lambda item: item)
    assert full == Page(items=[10, 20, 30], next_cursor="30")
    following = request.following(full.next_cursor)
    assert following == PageRequest(limit=3, cursor=30, kind=numbers)
    short = keyset_page([40], following, key=lambda item: item)
    assert short.next_cursor is None
    assert following.following(short.next_cursor) is None
    assert keyset_page([], request, key=lambda item: item).next_cursor is None


def test_numbered_items_page_by_index_until_none_is_left() -> None:
    request = PageRequest(limit=2, cursor=None, kind=numbers)
    assert index_page(["a", "b"], request, count=5).next_cursor == "2"
    last = PageRequest(limit=2, cursor=4, kind=numbers)
    assert index_page(["e"], last, count=5).next_cursor is None
    exact = PageRequest(limit=2, cursor=2, kind=numbers)
    assert index_page(["c", "d"], exact, count=4).next_cursor is None


def test_a_keyset_query_appends_the_key_after_the_filters() -> None:
    query = KeysetQuery(
        "SELECT * FROM things WHERE tenant_id = $1 AND ($2::text IS NULL OR status = $2)",
        kind=positions,
    )
    assert query.sql == (
        "SELECT * FROM things WHERE tenant_id = $1 AND ($2::text IS NULL OR status = $2)"
        "\n   AND ($3::timestamptz IS NULL OR (created_at, id) > ($3::timestamptz, $4::uuid))"
        "\n ORDER BY created_at, id LIMIT $5"
    )
    joined = KeysetQuery(
        "SELECT t.id FROM things t JOIN others o WHERE true", kind=numbers, table="t"
    )
    assert joined.sql.endswith(
        "AND ($1::bigint IS NULL OR (t.id) > ($1::bigint))\n ORDER BY t.id LIMIT $2"
    )


@pytest.mark.parametrize(
    ("kind", "cursor"),
    [
        (positions, "99999999999999999999_" + "0" * 32),  # past the year 9999
        (row_ids, str(2**63)),  # past a Postgres bigint
        (ledger_timestamps, str(2**64)),  # past a TigerBeetle u64
    ],
)
def test_a_cursor_of_the_right_form_naming_no_place_has_a_code_of_its_own(
    kind: CursorKind[Any], cursor: str
) -> None:
    """The published pattern admits these (it cannot bound a number), so they are not the
    cursor's shape but a place no list has: `cursor_out_of_range`, never a 500."""
    with pytest.raises(ProblemError) as raised:
        page_request(kind, limit=1, cursor=cursor, limit_max=1)
    assert (raised.value.status, raised.value.code) == (422, "cursor_out_of_range")
    assert raised.value.errors[0].field == "cursor"
