"""Public ids: every 128-bit id encodes to its prefix and 26 Crockford base32 digits (the
same digits a plain one-digit-at-a-time encoder gives), decodes back to itself in either
case, and anything malformed (a wrong prefix or length, letters outside the alphabet,
underscores, spaces, other scripts' digits, zero) names no object: 404, never a crash.
The UUIDs built for Postgres are `uuid.UUID`s equal to, and printing like, the standard
library's for the same value."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.http.ids import as_uuid, decode_id, encode_id, uuid_from_bytes
from gateway.http.problems import ProblemError
from ledger.invariants import InvariantViolation

alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def reference_encoding(object_id: int) -> str:
    digits = []
    for _ in range(26):
        digits.append(alphabet[object_id & 31])
        object_id >>= 5
    return "".join(reversed(digits))


@given(object_id=st.integers(min_value=1, max_value=(1 << 128) - 1))
def test_ids_round_trip_and_match_the_reference(object_id: int) -> None:
    encoded = encode_id("tr", object_id)
    assert encoded == f"tr_{reference_encoding(object_id)}"
    assert decode_id("tr", encoded) == object_id
    assert decode_id("tr", encoded.lower()) == object_id


@pytest.mark.parametrize(
    "text",
    [
        "hold_" + "1" * 26,
        "tr_" + "1" * 25,
        "tr_" + "1" * 27,
        "tr_" + "I" * 26,
        "tr_" + "L" * 26,
        "tr_" + "O" * 26,
        "tr_" + "U" * 26,
        "tr_" + "1" * 25 + "_",
        "tr_ " + "1" * 25,
        "tr_" + "\u0663" * 26,
        "tr_" + "0" * 26,
        "tr_" + "Z" * 26,
    ],
)
def test_malformed_ids_name_no_object(text: str) -> None:
    with pytest.raises(ProblemError) as raised:
        decode_id("tr", text)
    assert raised.value.status == 404
    assert raised.value.detail.startswith("no transfer with id ")


@given(value=st.integers(min_value=0, max_value=(1 << 128) - 1))
def test_uuids_for_postgres_are_the_standard_librarys(value: int) -> None:
    expected = uuid.UUID(int=value)
    for built in (as_uuid(value), uuid_from_bytes(expected.bytes)):
        assert isinstance(built, uuid.UUID)
        assert built == expected
        assert hash(built) == hash(expected)
        assert str(built) == str(expected)
        assert built.int == value


def test_a_uuid_is_sixteen_bytes() -> None:
    with pytest.raises(InvariantViolation):
        uuid_from_bytes(bytes(15))
