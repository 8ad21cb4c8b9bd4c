"""The JSON shapes of recipients and transfers."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from gateway.http.wire import (
    CountryCode,
    CurrencyCode,
    IssuedCurrencyCode,
    Money,
    PublicId,
    Reference,
    Timestamp,
    printable_text_pattern,
)


class RecipientCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=140, pattern=printable_text_pattern)]
    country: CountryCode
    currency: CurrencyCode
    bank_details: Annotated[
        dict[Annotated[str, Meta(max_length=32)], Annotated[str, Meta(max_length=64)]],
        Meta(max_length=4),
    ]


class TransferCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    quote_id: PublicId
    recipient_id: PublicId
    reference: Reference


class TransferCancel(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Cancelling takes no fields; an empty object (or no body) is accepted."""


class Recipient(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: str = "recipient"
    name: str
    country: str
    currency: IssuedCurrencyCode
    bank_details: dict[str, str]
    status: str
    created_at: Timestamp


TransferStatus = Literal[
    "processing",
    "submitted",
    "pending_rail",
    "completed",
    "in_review",
    "blocked",
    "rail_rejected",
    "refunded",
    "cancelled",
]

transfer_statuses: tuple[str, ...] = TransferStatus.__args__  # type: ignore[attr-defined]


class Transfer(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: str = "transfer"
    status: TransferStatus
    quote_id: str
    recipient_id: str
    reference: str
    source: Money
    fee: Money
    target: Money
    rate: str
    rail: str
    failure_code: str | None
    created_at: Timestamp
    updated_at: Timestamp
    batch_id: str | None = None


class TransferPage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[Transfer]
    next_cursor: str | None


class TransferMessage(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    direction: str
    attempt: int
    xml: str
    created_at: Timestamp


class TransferMessageList(msgspec.Struct, frozen=True, kw_only=True):
    data: list[TransferMessage]
