"""The JSON shapes of buckets, allocation rules and allocation previews."""

from __future__ import annotations

import datetime
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import Meta

from gateway.buckets.rules import Period, RuleKind
from gateway.http.wire import (
    AmountMinor,
    CurrencyCode,
    FieldsByValue,
    IssuedCurrencyCode,
    PublicId,
    Timestamp,
    fields_by_value,
    only_with,
    printable_text_pattern,
)
from ledger.service import amount_minor_max
from rails.partners.partner import PartnerKind

bucket_name_length_max = 100
account_reference_length_max = 64
# Priorities run from 0 (first) to this; ties apply in order of creation.
priority_max = 10_000
days_of_month_max = 31
# How many buckets and live rules one customer may have: configurable
# (`KOVRA_BUCKETS_PER_CUSTOMER_MAX`, `KOVRA_RULES_PER_CUSTOMER_MAX`) up to these ceilings,
# which keep a run's allocation chain and a page of balances far inside one ledger request.
buckets_per_customer_default = 50
buckets_per_customer_limit_max = 500
rules_per_customer_default = 50
rules_per_customer_limit_max = 500

BucketName = Annotated[
    str, Meta(min_length=1, max_length=bucket_name_length_max, pattern=printable_text_pattern)
]
AccountReference = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=account_reference_length_max,
        pattern=printable_text_pattern,
        description="the customer's account or contract at the partner",
    ),
]
AmountOrZero = Annotated[
    int, Meta(ge=0, le=amount_minor_max, description="integer amount in minor units")
]
PercentBps = Annotated[
    int, Meta(ge=1, le=10_000, description="basis points of the collected amount (1 = 0.01%)")
]
DayOfMonth = Annotated[int, Meta(ge=1, le=31)]
AwareTime = Annotated[datetime.datetime, Meta(tz=True, extra_json_schema={"format": "date-time"})]


class BucketCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`account_reference` only with `partner_id`: it names the customer's account there."""

    json_schema_extra: ClassVar[dict[str, Any]] = only_with("account_reference", "partner_id")

    kind: PartnerKind
    name: BucketName
    currency: CurrencyCode
    partner_id: PublicId | None = None
    account_reference: AccountReference | None = None
    target_amount: AmountMinor | None = None


class Bucket(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: str = "bucket"
    customer_id: str
    kind: str
    name: str
    currency: IssuedCurrencyCode
    partner_id: str | None
    account_reference: str | None
    target_amount: int | None
    balance: int  # In the bucket now (delivered money has left it).
    delivered: int  # Paid on to the partner, in all.
    pending_delivery: int  # Reserved for a partner's answer (still in `balance`).
    created_at: Timestamp


class BucketPage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[Bucket]
    next_cursor: str | None


class PeriodCap(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    amount: AmountMinor
    period: Period


class RuleConditions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    minimum_left: AmountOrZero | None = None
    maximum_per_period: PeriodCap | None = None
    days_of_month: (
        Annotated[list[DayOfMonth], Meta(min_length=1, max_length=days_of_month_max)] | None
    ) = None
    active_from: AwareTime | None = None
    active_until: AwareTime | None = None


# The amount field each kind of rule needs, the others left out (a remainder needs none).
_amount_fields = ("percent_bps", "amount", "above")
rule_kind_fields: FieldsByValue = {
    kind: (needed, tuple(name for name in _amount_fields if name not in needed))
    for kind, needed in (
        ("percentage", ("percent_bps",)),
        ("fixed", ("amount",)),
        ("threshold", ("above",)),
        ("remainder", ()),
    )
}


class RuleCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Exactly the amount field of its kind (`rule_kind_fields`)."""

    json_schema_extra: ClassVar[dict[str, Any]] = fields_by_value("kind", rule_kind_fields)

    bucket_id: PublicId
    kind: RuleKind
    priority: Annotated[int, Meta(ge=0, le=priority_max)] = 100
    percent_bps: PercentBps | None = None  # Percentage rules only, and required there.
    amount: AmountMinor | None = None  # Fixed rules only, and required there.
    above: AmountOrZero | None = None  # Threshold rules only, and required there.
    conditions: RuleConditions | None = None


class Rule(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: str = "rule"
    customer_id: str
    bucket_id: str
    kind: RuleKind
    priority: int
    percent_bps: int | None
    amount: int | None
    above: int | None
    conditions: RuleConditions
    status: Literal["active", "deleted"]
    created_at: Timestamp
    deleted_at: Timestamp | None


class RulePage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[Rule]
    next_cursor: str | None


class PreviewCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    amount: AmountMinor
    currency: CurrencyCode


class PreviewAllocation(msgspec.Struct, frozen=True, kw_only=True):
    rule_id: str
    bucket_id: str
    amount: int


class Preview(msgspec.Struct, frozen=True, kw_only=True):
    object: str = "allocation_preview"
    customer_id: str
    amount: int
    currency: IssuedCurrencyCode
    allocations: list[PreviewAllocation]
    unallocated: int
