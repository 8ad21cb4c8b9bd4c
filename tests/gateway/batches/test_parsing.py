"""Batch items from JSON and CSV are parsed one by one: a bad item becomes a per-item error
naming its field (and, in CSV, its row and column) while the others parse; a body that is
not a batch at all is refused as a whole (a CSV one with the batch domain's errors, answered
as 400 `malformed_csv` or 422 `validation_error` naming the fields). A CSV holding U+0000,
which Postgres text cannot store, is malformed rather than a 500 at the INSERT."""

from __future__ import annotations

import json

import pytest

from gateway.batches.errors import InvalidBatch, MalformedCsv
from gateway.batches.parsing import ParsedItem, RefusedItem, parse_csv, parse_json
from gateway.batches.wire import batch_items_max
from gateway.http.ids import encode_id
from gateway.http.problems import ProblemError, from_domain_error

recipient = encode_id("rcp", 12345)


def test_json_items_are_validated_one_by_one() -> None:
    body = {
        "atomic": True,
        "items": [
            {"recipient_id": recipient, "source_currency": "EUR", "target_currency": "IDR",
             "source_amount": 100, "reference": "ok"},
            {"recipient_id": recipient, "source_currency": "EUR", "target_currency": "IDR",
             "source_amount": "100", "reference": "string amount"},
            {"recipient_id": recipient, "source_currency": "EUR", "target_currency": "IDR",
             "source_amount": 1, "target_amount": 2, "reference": "both"},
            {"recipient_id": "rcp_nonsense", "source_currency": "EUR", "target_currency": "IDR",
             "target_amount": 5, "reference": "bad id"},
            {"recipient_id": recipient, "source_currency": "eur", "target_currency": "IDR",
             "source_amount": 100, "reference": "lower case"},
            {"recipient_id": recipient, "source_currency": "EUR", "target_currency": "IDR",
             "source_amount": 100, "reference": "shift\x0eout"},
        ],
    }  # fmt: skip
    raw = json.dumps(body).encode().replace(b'"source_amount": 100,', b'"source_amount": 1e2,', 1)
    atomic, items = parse_json(raw)
    assert atomic is True
    first, second, third, fourth, fifth, sixth = items
    # 1e2 is the integer 100 to JSON Schema, and read exactly.
    assert isinstance(first, ParsedItem)
    assert (first.source_currency, first.recipient_id, first.source_amount) == ("EUR", 12345, 100)
    assert isinstance(second, RefusedItem)
    assert (second.index, second.error.field) == (1, "source_amount")
    assert isinstance(third, RefusedItem)
    assert third.error.field == "source_amount"
    assert "exactly one" in third.error.message
    assert isinstance(fourth, RefusedItem)
    assert (fourth.error.code, fourth.error.field) == ("unknown_recipient", "recipient_id")
    # ISO 4217 writes codes in capitals; a control character cannot go into a pain.001.
    assert isinstance(fifth, RefusedItem)
    assert (fifth.error.code, fifth.error.field) == ("validation_error", "source_currency")
    assert isinstance(sixth, RefusedItem)
    assert (sixth.error.code, sixth.error.field) == ("validation_error", "reference")


def test_json_atomic_is_none_when_the_body_leaves_it_out() -> None:
    item = {"recipient_id": recipient, "source_currency": "EUR", "target_currency": "IDR",
            "source_amount": 100, "reference": "ok"}  # fmt: skip
    atomic, _ = parse_json(json.dumps({"items": [item]}).encode())
    assert atomic is None


def test_a_csv_reference_with_a_control_character_is_refused_in_its_row() -> None:
    header = "recipient_id,source_currency,target_currency,source_amount,target_amount,reference"
    rows = f"{recipient},EUR,IDR,100,,fine\n{recipient},EUR,IDR,100,,bell\x07\n"
    first, second = parse_csv(f"{header}\n{rows}".encode())
    assert isinstance(first, ParsedItem)
    assert isinstance(second, RefusedItem)
    assert (second.index, second.error.field) == (1, "reference")
    assert "control character" in second.error.message


def test_json_without_items_is_refused_whole() -> None:
    with pytest.raises(ProblemError) as refused:
        parse_json(b'{"items": []}')
    assert refused.value.status == 422
    with pytest.raises(ProblemError):
        parse_json(b"not json")


def test_csv_rows_name_their_row_and_column() -> None:
    text = (
        "reference,recipient_id,source_currency,target_currency,source_amount,target_amount\n"
        f"INV-1,{recipient},EUR,IDR,1500,\n"
        f"INV-2,{recipient},EUR,IDR,12.50,\n"
        f"INV-3,{recipient},EURO,IDR,,700\n"
        f"INV-4,{recipient},GBP,GBP,,700\n"
    )
    items = parse_csv(text.encode())
    assert [type(item) for item in items] == [ParsedItem, RefusedItem, RefusedItem, ParsedItem]
    second, third = items[1], items[2]
    assert isinstance(second, RefusedItem)
    assert second.error.field == "source_amount"
    assert second.error.message.startswith("row 3, column source_amount")
    assert isinstance(third, RefusedItem)
    assert third.error.field == "source_currency"
    assert "row 4" in third.error.message
    last = items[3]
    assert isinstance(last, ParsedItem)
    assert (last.target_amount, last.source_amount) == (700, None)


def test_a_csv_without_the_columns_is_refused_whole() -> None:
    with pytest.raises(InvalidBatch) as refused:
        parse_csv(b"recipient_id,reference\nx,y\n")
    problem = from_domain_error(refused.value)
    assert (problem.status, problem.code) == (422, "validation_error")
    assert problem.detail == (
        "the CSV header lacks source_currency, target_currency, source_amount, target_amount"
    )
    assert [(e.field, e.message) for e in problem.errors] == [
        ("source_currency", "missing column"),
        ("target_currency", "missing column"),
        ("source_amount", "missing column"),
        ("target_amount", "missing column"),
    ]
    with pytest.raises(InvalidBatch) as empty:
        parse_csv(
            b"recipient_id,source_currency,target_currency,source_amount,target_amount,reference\n"
        )
    problem = from_domain_error(empty.value)
    assert (problem.status, problem.detail) == (422, "the CSV has no rows")
    assert [(e.field, e.message) for e in problem.errors] == [("items", "at least one row")]


def test_a_csv_with_too_many_rows_is_refused_whole() -> None:
    header = "recipient_id,source_currency,target_currency,source_amount,target_amount,reference\n"
    row = f"{recipient},EUR,IDR,100,,INV\n"
    with pytest.raises(InvalidBatch) as refused:
        parse_csv((header + row * (batch_items_max + 1)).encode())
    problem = from_domain_error(refused.value)
    assert (problem.status, problem.detail) == (422, f"a batch has at most {batch_items_max} items")
    assert [(e.field, e.message) for e in problem.errors] == [
        ("items", f"at most {batch_items_max} rows")
    ]


def test_a_body_that_is_not_csv_is_malformed() -> None:
    with pytest.raises(MalformedCsv) as not_utf8:
        parse_csv(b"recipient_id\n\xff\n")
    problem = from_domain_error(not_utf8.value)
    assert (problem.status, problem.code) == (400, "malformed_csv")
    assert (problem.detail, problem.errors) == ("the CSV body is not UTF-8", [])
    header = "recipient_id,source_currency,target_currency,source_amount,target_amount,reference\n"
    with pytest.raises(MalformedCsv) as broken:
        parse_csv(f'{header}"x"y,EUR\n'.encode())
    assert from_domain_error(broken.value).detail == "line 1: ',' expected after '\"'"


def test_a_csv_holding_nul_is_malformed() -> None:
    header = "recipient_id,source_currency,target_currency,source_amount,target_amount,reference\n"
    with pytest.raises(MalformedCsv) as refused:
        parse_csv(f"{header}{recipient},EUR,IDR,100,,IN\x00V\n".encode())
    problem = from_domain_error(refused.value)
    assert (problem.status, problem.code) == (400, "malformed_csv")
    assert problem.detail == "the CSV body holds U+0000 (NUL)"
