"""The JSON shapes of `/v1/batches`: the request, its items, and the batch with per-item
results. Items are decoded one by one (see `gateway.batches.parsing`), so one bad item is
a per-item error, not a refusal of the whole batch."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import Meta

from gateway.http.wire import (
    AmountMinor,
    CurrencyCode,
    IssuedCurrencyCode,
    PublicId,
    Reference,
    Timestamp,
    exactly_one_of,
)

batch_items_max = 10_000
batch_page_max = 1_000
# The columns a CSV upload's header names, in any order (others are ignored).
csv_columns = (
    "recipient_id",
    "source_currency",
    "target_currency",
    "source_amount",
    "target_amount",
    "reference",
)

ItemStatus = Literal[
    "processing",
    "submitted",
    "pending_rail",
    "completed",
    "in_review",
    "blocked",
    "rail_rejected",
    "refunded",
    "cancelled",
    "rejected",
]
BatchStatus = Literal["processing", "completed"]


class BatchItemCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One payout: exactly one of `source_amount` and `target_amount`."""

    recipient_id: PublicId
    json_schema_extra: ClassVar[dict[str, Any]] = exactly_one_of("source_amount", "target_amount")

    source_currency: CurrencyCode
    target_currency: CurrencyCode
    source_amount: AmountMinor | None = None
    target_amount: AmountMinor | None = None
    reference: Reference


class BatchCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Up to `batch_items_max` payouts; `atomic` makes the batch all or nothing."""

    items: Annotated[list[BatchItemCreate], Meta(min_length=1, max_length=batch_items_max)]
    atomic: bool = False


class BatchEnvelope(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`BatchCreate` with its items left undecoded, so each is validated on its own."""

    items: Annotated[list[msgspec.Raw], Meta(min_length=1, max_length=batch_items_max)]
    # Left out, the query parameter decides (`gateway.batches.routes`).
    atomic: bool | msgspec.UnsetType = msgspec.UNSET


class ItemError(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    field: str | None
    message: str


class BatchItemResult(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    index: int
    status: ItemStatus
    transfer_id: str | None = None
    reference: str | None = None
    source_currency: IssuedCurrencyCode | None = None
    target_currency: IssuedCurrencyCode | None = None
    source_amount: int | None = None
    fee_amount: int | None = None
    target_amount: int | None = None
    rail: str | None = None
    failure_code: str | None = None
    error: ItemError | None = None


class BatchNetting(msgspec.Struct, frozen=True, kw_only=True):
    """One currency pair's conversion chain: locked rate, totals, and how many items."""

    source_currency: IssuedCurrencyCode
    target_currency: IssuedCurrencyCode
    quote_id: str
    rate: str
    source_amount: int
    fee_amount: int
    target_amount: int
    item_count: int


class Batch(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: str = "batch"
    status: BatchStatus
    atomic: bool
    item_count: int
    accepted_count: int
    rejected_count: int
    counts: dict[str, int]
    nettings: list[BatchNetting]
    items: list[BatchItemResult]
    next_cursor: str | None
    created_at: Timestamp
    completed_at: Timestamp | None


class BatchMessage(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    rail: str
    currency: IssuedCurrencyCode
    number_of_transactions: int
    control_sum: int
    xml: str
    created_at: Timestamp


class BatchMessageList(msgspec.Struct, frozen=True, kw_only=True):
    data: list[BatchMessage]
