"""`decode_body` refuses a string holding U+0000 (NUL) as the caller's error, a 422 naming
the body, whatever the body type: Postgres text cannot store it, so before this check a batch
item whose reference held it reached the INSERT and answered 500 (found by the fuzzer,
`tests/gateway/e2e/test_fuzzing.py`). A backslash escaped before the text `u0000` is no NUL
and decodes as written.

A number whose fractional part is zero (`100.0`, `1e2`) is taken where an integer is due, as
JSON Schema counts it an integer; it is read exactly, so no fraction, however small, is
rounded away into an integer, and a huge exponent is refused rather than expanded."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.http.problems import ProblemError
from gateway.http.requests import decode_body


class Body(msgspec.Struct, forbid_unknown_fields=True):
    reference: str


@pytest.mark.parametrize(
    "raw",
    [
        rb'{"reference": "INV\u0000-1"}',
        rb'{"reference": "\u0000"}',
        rb'{"reference": "INV\\\u0000"}',  # an escaped backslash, then a NUL
    ],
)
def test_a_string_holding_nul_is_refused_as_a_validation_error(raw: bytes) -> None:
    with pytest.raises(ProblemError) as refused:
        decode_body(raw, Body)
    assert (refused.value.status, refused.value.code) == (422, "validation_error")
    assert "U+0000" in refused.value.detail


def test_an_escaped_backslash_before_u0000_is_text() -> None:
    assert decode_body(rb'{"reference": "INV\\u0000"}', Body).reference == "INV\\u0000"


def test_a_body_without_nul_decodes() -> None:
    assert decode_body(b'{"reference": "INV-1"}', Body).reference == "INV-1"


class Amount(msgspec.Struct, forbid_unknown_fields=True):
    amount: int
    limit: int | None = None


@pytest.mark.parametrize(
    ("raw", "amount"),
    [(b'{"amount": 100.0}', 100), (b'{"amount": 1e2}', 100), (b'{"amount": 1.00E+3}', 1000)],
)
def test_an_integral_number_is_an_integer(raw: bytes, amount: int) -> None:
    assert decode_body(raw, Amount).amount == amount
    assert decode_body(raw.replace(b"amount", b"limit").replace(b"{", b'{"amount": 1, '), Amount)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"amount": 100.5}',
        b'{"amount": 2.0000000000000001}',  # a float would round this to 2.0
        b'{"amount": 1e400000000}',  # never expanded into an integer of that many digits
        b'{"amount": "100"}',  # no coercion of strings, as before
    ],
)
def test_a_fraction_or_a_string_is_refused_naming_the_field(raw: bytes) -> None:
    with pytest.raises(ProblemError) as refused:
        decode_body(raw, Amount)
    assert (refused.value.status, refused.value.code) == (422, "validation_error")
    assert refused.value.errors is not None
    assert refused.value.errors[0].field == "amount"


@given(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.integers(min_value=1, max_value=20),
    st.integers(min_value=1, max_value=10**6),
)
def test_a_decimal_is_taken_exactly_when_integral(
    integer: int, fraction_digits: int, fraction: int
) -> None:
    integral = f"{integer}.{'0' * fraction_digits}".encode()
    assert decode_body(b'{"amount": ' + integral + b"}", Amount).amount == integer
    written = f"{integer}.{'0' * fraction_digits}{fraction}"
    assert Decimal(written) != integer
    with pytest.raises(ProblemError):
        decode_body(b'{"amount": ' + written.encode() + b"}", Amount)
