"""Rows as the API shows them (answers and event payloads alike), and rows as the rules
function reads them."""

from __future__ import annotations

from typing import cast

from gateway.buckets import rules, wire
from gateway.buckets.records import BucketRow, RuleRow
from gateway.http.ids import encode_id
from ledger.buckets import BucketBalance

bucket_prefix = "bkt"
rule_prefix = "rul"
customer_prefix = "cus"
partner_prefix = "ptn"
_no_balance = BucketBalance(
    sub_account=1, allocated_minor=0, delivered_minor=0, pending_delivery_minor=0, balance_minor=0
)


def bucket_view(row: BucketRow, balance: BucketBalance | None = None) -> wire.Bucket:
    shown = balance or _no_balance
    return wire.Bucket(
        id=encode_id(bucket_prefix, row.id.int),
        customer_id=encode_id(customer_prefix, row.customer_id.int),
        kind=row.kind,
        name=row.name,
        currency=row.currency,
        partner_id=None
        if row.partner_id is None
        else encode_id(partner_prefix, row.partner_id.int),
        account_reference=row.account_reference,
        target_amount=row.target_amount_minor,
        balance=shown.balance_minor,
        delivered=shown.delivered_minor,
        pending_delivery=shown.pending_delivery_minor,
        created_at=row.created_at,
    )


def conditions_view(row: RuleRow) -> wire.RuleConditions:
    cap = (
        None
        if row.cap_minor is None or row.cap_period is None
        else wire.PeriodCap(amount=row.cap_minor, period=cast(rules.Period, row.cap_period))
    )
    return wire.RuleConditions(
        minimum_left=row.minimum_left_minor,
        maximum_per_period=cap,
        days_of_month=None if row.days_of_month is None else list(row.days_of_month),
        active_from=row.active_from,
        active_until=row.active_until,
    )


def rule_view(row: RuleRow) -> wire.Rule:
    return wire.Rule(
        id=encode_id(rule_prefix, row.id.int),
        customer_id=encode_id(customer_prefix, row.customer_id.int),
        bucket_id=encode_id(bucket_prefix, row.bucket_id.int),
        kind=cast(rules.RuleKind, row.kind),
        priority=row.priority,
        percent_bps=row.percent_bps,
        amount=row.amount_minor,
        above=row.above_minor,
        conditions=conditions_view(row),
        status="active" if row.deleted_at is None else "deleted",
        created_at=row.created_at,
        deleted_at=row.deleted_at,
    )


def rule_of(row: RuleRow) -> rules.Rule:
    """The stored rule as `rules.evaluate` reads it."""
    cap = (
        None
        if row.cap_minor is None or row.cap_period is None
        else rules.PeriodCap(amount_minor=row.cap_minor, period=cast(rules.Period, row.cap_period))
    )
    return rules.Rule(
        id=row.id,
        bucket_id=row.bucket_id,
        kind=cast(rules.RuleKind, row.kind),
        priority=row.priority,
        created_at=row.created_at,
        percent_bps=row.percent_bps,
        amount_minor=row.amount_minor,
        above_minor=row.above_minor,
        conditions=rules.Conditions(
            minimum_left_minor=row.minimum_left_minor,
            maximum_per_period=cap,
            days_of_month=None if row.days_of_month is None else tuple(row.days_of_month),
            active_from=row.active_from,
            active_until=row.active_until,
        ),
    )
