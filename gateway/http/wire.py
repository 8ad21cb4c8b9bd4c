"""The JSON shapes every domain shares: constrained currency codes, amounts, references
and ids, money, and the ops plane's answers.

Every request Struct forbids unknown fields and bounds every string and number, so bad
input is refused with the offending field named before anything happens; domain Structs
build on these types.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from ledger.service import amount_minor_max

# A request may name a currency in either case (it is upper-cased); an answer names it in
# capitals, as ISO 4217 writes it.
currency_code_pattern = "^[A-Za-z]{3}$"
CurrencyCode = Annotated[str, Meta(pattern=currency_code_pattern, description="ISO 4217 code")]
IssuedCurrencyCode = Annotated[str, Meta(pattern="^[A-Z]{3}$", description="ISO 4217 code")]
AmountMinor = Annotated[
    int, Meta(ge=1, le=amount_minor_max, description="integer amount in minor units")
]
Reference = Annotated[str, Meta(min_length=1, max_length=140)]
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
