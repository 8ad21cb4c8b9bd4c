"""`decode_body` refuses a string holding U+0000 (NUL) as the caller's error, a 422 naming
the body, whatever the body type: Postgres text cannot store it, so before this check a batch
item whose reference held it reached the INSERT and answered 500 (found by the fuzzer,
`tests/gateway/e2e/test_fuzzing.py`). A backslash escaped before the text `u0000` is no NUL
and decodes as written."""

from __future__ import annotations

import msgspec
import pytest

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
