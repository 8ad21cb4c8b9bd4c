"""Page cursors are exact: any timestamp (to the microsecond) and id come back unchanged,
and a cursor Kovra did not make is a 422 naming `cursor`, never a crash; so are the number
cursors (ledger timestamps, row ids) of statements and the admin lists."""

from __future__ import annotations

import datetime
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.http.paging import (
    decode_cursor,
    decode_number_cursor,
    encode_cursor,
    page_limit_or_422,
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
    assert decode_cursor(encode_cursor(moment, object_id)) == (moment, object_id)


@pytest.mark.parametrize(
    "cursor", ["", "abc", "12_xyz", "1.5_" + "0" * 32, "9" * 400 + "_" + "0" * 32]
)
def test_a_foreign_cursor_is_refused_naming_it(cursor: str) -> None:
    with pytest.raises(ProblemError) as raised:
        decode_cursor(cursor)
    assert raised.value.status == 422
    assert raised.value.errors[0].field == "cursor"


@pytest.mark.parametrize("cursor", ["", "-1", "1.5", "abc", "\u0663", "1" * 21])
def test_a_foreign_number_cursor_is_refused_naming_it(cursor: str) -> None:
    with pytest.raises(ProblemError) as raised:
        decode_number_cursor(cursor)
    assert raised.value.status == 422
    assert raised.value.errors[0].field == "cursor"


@given(number=st.integers(min_value=0, max_value=(1 << 64) - 1))
def test_a_number_cursor_round_trips(number: int) -> None:
    assert decode_number_cursor(str(number)) == number
    assert decode_number_cursor(None) is None


def test_limits_outside_the_page_size_are_refused() -> None:
    assert page_limit_or_422(10, limit_max=10) == 10
    for limit in (0, 11):
        with pytest.raises(ProblemError):
            page_limit_or_422(limit, limit_max=10)
