"""Reading a batch's items from JSON or CSV, one item at a time.

A batch of thousands of payouts should not fail because one row has a typo: each item is
decoded and validated on its own, and a bad one becomes a per-item error naming its field
(and, for CSV, its row and column). Only a body that is not a batch at all (not JSON, no
items, too many items, a CSV without the expected header) is refused as a whole: by the
HTTP edge's strict decoding for JSON, and for CSV with the batch domain's errors
(`MalformedCsv`, `InvalidBatch`), which `gateway.http.problems` maps to problems.
"""

from __future__ import annotations

import csv
import io
import re

import msgspec

from gateway.batches.errors import InvalidBatch, MalformedCsv
from gateway.batches.wire import (
    BatchEnvelope,
    BatchItemCreate,
    ItemError,
    batch_items_max,
    csv_columns,
)
from gateway.http.ids import decode_id
from gateway.http.problems import ProblemError
from gateway.http.requests import decode_body, decode_json
from gateway.http.wire import printable_text_pattern
from ledger.service import amount_minor_max

reference_length_max = 140
public_id_length_max = 64
_currency_pattern = re.compile(r"[A-Za-z]{3}")
_amount_pattern = re.compile(r"[0-9]{1,19}")
_field_pattern = re.compile(r"(?:field `([^`]+)`|at `\$\.?([^`]*)`)")
_item_decoder = msgspec.json.Decoder(BatchItemCreate)
_printable = re.compile(printable_text_pattern)


class ParsedItem(msgspec.Struct, frozen=True, kw_only=True):
    """An item whose shape is valid; the recipient and the money are checked later."""

    index: int
    recipient_id: int
    source_currency: str
    target_currency: str
    source_amount: int | None
    target_amount: int | None
    reference: str


class RefusedItem(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    error: ItemError
    reference: str | None = None


Parsed = ParsedItem | RefusedItem


def parse_json(raw: bytes) -> tuple[bool | None, list[Parsed]]:
    """`atomic` (None when the body leaves it out) and every item of a JSON batch, each
    parsed or refused."""
    envelope = decode_body(raw, BatchEnvelope)
    atomic = None if envelope.atomic is msgspec.UNSET else envelope.atomic
    return atomic, [_json_item(index, item) for index, item in enumerate(envelope.items)]


def _json_item(index: int, raw: msgspec.Raw) -> Parsed:
    try:
        item = decode_json(_item_decoder, raw, BatchItemCreate)
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        message = str(error)
        found = _field_pattern.search(message)
        field = (found.group(1) or found.group(2)) if found else None
        return RefusedItem(
            index=index,
            error=ItemError(code="validation_error", field=field or None, message=message[:500]),
        )
    return _checked(
        index,
        recipient=item.recipient_id,
        source_currency=item.source_currency,
        target_currency=item.target_currency,
        source_amount=item.source_amount,
        target_amount=item.target_amount,
        reference=item.reference,
    )


def _checked(
    index: int,
    *,
    recipient: str,
    source_currency: str,
    target_currency: str,
    source_amount: int | None,
    target_amount: int | None,
    reference: str,
    where: str = "",
) -> Parsed:
    """The checks both formats share: exactly one amount, a well-formed recipient id."""
    if (source_amount is None) == (target_amount is None):
        return RefusedItem(
            index=index,
            reference=reference,
            error=ItemError(
                code="validation_error",
                field="source_amount",
                message=f"{where}give exactly one of source_amount and target_amount",
            ),
        )
    try:
        recipient_id = decode_id("rcp", recipient)
    except ProblemError:
        return RefusedItem(
            index=index,
            reference=reference,
            error=ItemError(
                code="unknown_recipient",
                field="recipient_id",
                message=f"{where}no recipient {recipient[:public_id_length_max]!r}",
            ),
        )
    return ParsedItem(
        index=index,
        recipient_id=recipient_id,
        source_currency=source_currency.upper(),
        target_currency=target_currency.upper(),
        source_amount=source_amount,
        target_amount=target_amount,
        reference=reference,
    )


def parse_csv(raw: bytes) -> list[Parsed]:
    """Every row of a CSV batch (header: `csv_columns`, in any order), each parsed or
    refused with its row (the header is row 1) and column named."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise MalformedCsv("the CSV body is not UTF-8") from None
    # Postgres text cannot hold U+0000, so a CSV that carries it is not one Kovra can record.
    if "\x00" in text:
        raise MalformedCsv("the CSV body holds U+0000 (NUL)")
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        header = reader.fieldnames or []
        missing = [column for column in csv_columns if column not in header]
        if missing:
            raise InvalidBatch(
                f"the CSV header lacks {', '.join(missing)}",
                fields=[(column, "missing column") for column in missing],
            )
        rows: list[dict[str | None, str | list[str] | None]] = []
        for row in reader:
            if len(rows) >= batch_items_max:
                raise InvalidBatch(
                    f"a batch has at most {batch_items_max} items",
                    fields=[("items", f"at most {batch_items_max} rows")],
                )
            rows.append(row)
    except csv.Error as error:
        raise MalformedCsv(f"line {reader.line_num}: {error}") from None
    if not rows:
        raise InvalidBatch("the CSV has no rows", fields=[("items", "at least one row")])
    return [_csv_item(index, row) for index, row in enumerate(rows)]


def _csv_item(index: int, row: dict[str | None, str | list[str] | None]) -> Parsed:
    where = f"row {index + 2}, column "
    if None in row:
        return _refused(index, None, "row", f"row {index + 2} has more fields than the header")
    values = {column: str(row.get(column) or "").strip() for column in csv_columns}
    reference = values["reference"]
    if not 1 <= len(reference) <= reference_length_max or not _printable.match(reference):
        return _refused(
            index,
            None,
            "reference",
            f"{where}reference: 1 to 140 characters, no control character",
        )
    if not 1 <= len(values["recipient_id"]) <= public_id_length_max:
        return _refused(index, reference, "recipient_id", f"{where}recipient_id: required")
    for column in ("source_currency", "target_currency"):
        if not _currency_pattern.fullmatch(values[column]):
            return _refused(index, reference, column, f"{where}{column}: an ISO 4217 code")
    amounts: dict[str, int | None] = {}
    for column in ("source_amount", "target_amount"):
        text = values[column]
        if not text:
            amounts[column] = None
        elif _amount_pattern.fullmatch(text) and 1 <= int(text) <= amount_minor_max:
            amounts[column] = int(text)
        else:
            return _refused(
                index,
                reference,
                column,
                f"{where}{column}: an integer of minor units from 1 to {amount_minor_max}",
            )
    return _checked(
        index,
        recipient=values["recipient_id"],
        source_currency=values["source_currency"],
        target_currency=values["target_currency"],
        source_amount=amounts["source_amount"],
        target_amount=amounts["target_amount"],
        reference=reference,
        where=f"row {index + 2}: ",
    )


def _refused(index: int, reference: str | None, field: str, message: str) -> RefusedItem:
    return RefusedItem(
        index=index,
        reference=reference,
        error=ItemError(code="validation_error", field=field, message=message),
    )
