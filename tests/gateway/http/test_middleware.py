"""Request ids: a printable `X-Request-Id` of bounded length is kept as the client sent it;
otherwise each request gets a fresh id of 32 hex digits, and no two are alike."""

from __future__ import annotations

import re
from typing import Any

from gateway.http.middleware import _request_id, request_id_length_max


def _scope(*headers: tuple[bytes, bytes]) -> Any:
    return {"type": "http", "headers": list(headers)}


def test_a_clients_request_id_is_kept() -> None:
    assert _request_id(_scope((b"x-request-id", b"trace-42"))) == "trace-42"


def test_an_unusable_request_id_is_replaced() -> None:
    too_long = b"x" * (request_id_length_max + 1)
    for given in (too_long, b"tab\there", b""):
        made = _request_id(_scope((b"x-request-id", given)))
        assert re.fullmatch(r"[0-9a-f]{32}", made), made


def test_made_request_ids_are_distinct() -> None:
    made = {_request_id(_scope()) for _ in range(10_000)}
    assert len(made) == 10_000
    assert all(re.fullmatch(r"[0-9a-f]{32}", value) for value in made)
