"""The JSON shapes every domain shares: constrained currency codes, amounts, references
and ids, money, and the ops plane's answers.

Every request Struct forbids unknown fields and bounds every string and number, so bad
input is refused with the offending field named before anything happens; domain Structs
build on these types.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from gateway.http.problems import invalid
from ledger.service import amount_minor_max

# A currency is named as ISO 4217 writes it, in capitals. A request may name only one the
# deployment enables (`KOVRA_CURRENCIES`): the OpenAPI document lists them in place of the
# pattern wherever `enabled_currency_marker` stands (`gateway.http.openapi`). An answer may
# name a currency enabled when its object was made, so its schema keeps the pattern.
currency_code_pattern = "^[A-Z]{3}$"
enabled_currency_marker = "x-kovra-enabled-currency"
enabled_currency_schema = {"type": "string", enabled_currency_marker: True}
CurrencyCode = Annotated[
    str,
    Meta(
        pattern=currency_code_pattern,
        description="ISO 4217 code of a currency this deployment enables",
        extra_json_schema={enabled_currency_marker: True},
    ),
]
IssuedCurrencyCode = Annotated[
    str, Meta(pattern=currency_code_pattern, description="ISO 4217 code")
]
_currency_code = re.compile(currency_code_pattern)


def currency_parameter_or_422(value: str, *, name: str = "currency") -> str:
    """A currency named in a query parameter, as ISO 4217 writes it, else a 422 naming the
    parameter (whether the deployment enables it is the ledger's check)."""
    if _currency_code.match(value) is None:
        raise invalid(name, detail=f"{name} is not an ISO 4217 code", message="three capitals")
    return value


AmountMinor = Annotated[
    int, Meta(ge=1, le=amount_minor_max, description="integer amount in minor units")
]
# Text that goes into rail messages (references, names): XML 1.0 cannot carry C0 control
# characters or DEL, so no such text may hold them; refused at the edge, naming the field,
# rather than failing the message later.
printable_text_pattern = r"^[^\x00-\x1f\x7f]*$"
Reference = Annotated[str, Meta(min_length=1, max_length=140, pattern=printable_text_pattern)]
# An instant: RFC 3339 with its offset, as every answer writes it and every request must.
Timestamp = Annotated[datetime.datetime, Meta(tz=True, extra_json_schema={"format": "date-time"})]
CountryCode = Annotated[str, Meta(pattern="^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]
PublicId = Annotated[str, Meta(min_length=1, max_length=64)]


class Money(msgspec.Struct, frozen=True, kw_only=True):
    amount: int
    currency: IssuedCurrencyCode


class Health(msgspec.Struct, frozen=True, kw_only=True):
    status: str


class Readiness(msgspec.Struct, frozen=True, kw_only=True):
    status: str
    checks: dict[str, str]


# What a request Struct's own schema cannot say about its nullable fields, in JSON Schema: a
# Struct names it in `json_schema_extra`, a class variable the OpenAPI document merges into
# the Struct's schema (`gateway.http.openapi`). A field "given" is present and not null; one
# "left out" is absent or null. The domain refuses what these forbid as `validation_error`,
# reading the same rules (`fields_at_fault`), so each is declared once, as data.
# Per value of a discriminating field: the fields it needs given and those it leaves out.
FieldsByValue = Mapping[str, tuple[Sequence[str], Sequence[str]]]


def _given_and_left_out(given: Sequence[str], left_out: Sequence[str]) -> dict[str, Any]:
    properties: dict[str, Any] = {name: {"not": {"type": "null"}} for name in given}
    properties.update({name: {"type": "null"} for name in left_out})
    return {"required": list(given), "properties": properties}


def exactly_one_of(first: str, second: str) -> dict[str, Any]:
    """JSON Schema for "exactly one of two nullable fields is given"."""
    return {
        "oneOf": [
            _given_and_left_out([first], [second]),
            _given_and_left_out([second], [first]),
        ]
    }


def fields_by_value(field: str, rules: FieldsByValue) -> dict[str, Any]:
    """JSON Schema for "the value of `field` decides which nullable fields are given and
    which left out" (a rule's kind its amount field, a partner's adapter its `url`)."""
    branches = []
    for value, (given, left_out) in rules.items():
        branch = _given_and_left_out([field, *given], left_out)
        branch["properties"][field] = {"const": value}
        branches.append(branch)
    return {"oneOf": branches}


def only_with(field: str, companion: str) -> dict[str, Any]:
    """JSON Schema for "the nullable `field` is given only when `companion` is"."""
    return {"anyOf": [_given_and_left_out([], [field]), _given_and_left_out([companion], [])]}


def fields_at_fault(body: msgspec.Struct, field: str, rules: FieldsByValue) -> tuple[str, bool]:
    """The first field of `body` (in the order the Struct declares them) that
    `fields_by_value(field, rules)` refuses, and whether it is missing (else given where it
    must be left out); `("", False)` when none is."""
    given, left_out = rules[getattr(body, field)]
    for name in body.__struct_fields__:
        value = getattr(body, name)
        if name in given and value is None:
            return name, True
        if name in left_out and value is not None:
            return name, False
    return "", False
