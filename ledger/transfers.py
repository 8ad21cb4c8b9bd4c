"""Transfer codes and deterministic transfer ids.

Every transfer id derives from the API object's id and the leg it plays, so a retried or
duplicated request re-submits the very same ids and TigerBeetle answers `exists` instead of
moving money twice. The object's id also rides in `user_data_128`, joining the ledger back
to Kovra's metadata.
"""

from __future__ import annotations

import enum
import hashlib
import os
import time

import tigerbeetle as tb

from ledger.invariants import ensure

u128_max = (1 << 128) - 1


class TransferCode(enum.IntEnum):
    """Why money moved; the value is the TigerBeetle transfer `code`. One place for all."""

    DEPOSIT = 1
    LIQUIDITY_FUNDING = 2
    HOLD = 10
    PAYOUT_SOURCE = 20
    PAYOUT_FEE = 21
    PAYOUT_TARGET = 22
    PAYOUT_SETTLEMENT = 23
    REFUND_SOURCE = 30
    REFUND_FEE = 31
    REFUND_TARGET = 32
    # Batches (ledger.netting): one conversion chain per currency pair, then per-item holds.
    BATCH_SOURCE = 40
    BATCH_FEE = 41
    BATCH_TARGET = 42
    BATCH_ITEM_SOURCE = 43
    BATCH_ITEM_FEE = 44
    BATCH_ITEM_RETURN = 45
    BATCH_ITEM_TARGET_RETURN = 46
    BATCH_REVERSAL = 47
    # Money in (SPEC §10): collections under mandates, and bank credits funding wallets.
    COLLECTION_CREDIT = 50
    COLLECTION_RETURN = 51
    COLLECTION_RETURN_SHORTFALL = 52
    FUNDING_CREDIT = 60
    SUSPENSE_CREDIT = 61
    SUSPENSE_RELEASE = 62
    # Automation (SPEC §11): a collected amount split into buckets, and buckets paid on to
    # partner institutions (a pending transfer while the partner is asked, then posted or
    # voided).
    BUCKET_ALLOCATION = 70
    PARTNER_DELIVERY = 71


class Leg(enum.IntEnum):
    """The role of one transfer within an API object; part of the transfer-id derivation."""

    DEPOSIT = 1
    LIQUIDITY_FUNDING = 2
    HOLD = 10
    HOLD_CAPTURE = 11
    HOLD_VOID = 12
    PAYOUT_SOURCE = 20
    PAYOUT_FEE = 21
    PAYOUT_TARGET = 22
    PAYOUT_SOURCE_POST = 23
    PAYOUT_FEE_POST = 24
    PAYOUT_TARGET_POST = 25
    PAYOUT_SOURCE_VOID = 26
    PAYOUT_FEE_VOID = 27
    PAYOUT_TARGET_VOID = 28
    PAYOUT_SETTLEMENT = 29
    REFUND_SOURCE = 30
    REFUND_FEE = 31
    REFUND_TARGET = 32
    BATCH_SOURCE = 40
    BATCH_FEE = 41
    BATCH_TARGET = 42
    BATCH_ITEM_RETURN = 45
    BATCH_ITEM_TARGET_RETURN = 46
    BATCH_REVERSAL = 47
    # Money in (SPEC §10): collections under mandates, and bank credits funding wallets.
    COLLECTION_CREDIT = 50
    COLLECTION_RETURN = 51
    COLLECTION_RETURN_SHORTFALL = 52
    FUNDING_CREDIT = 60
    SUSPENSE_CREDIT = 61
    SUSPENSE_RELEASE = 62
    # Automation (SPEC §11): the object is one allocation line (a bucket's share of a run),
    # which is also the id of the partner order that pays it on.
    BUCKET_ALLOCATION = 70
    PARTNER_DELIVERY = 71
    PARTNER_DELIVERY_POST = 72
    PARTNER_DELIVERY_VOID = 73


def new_object_id() -> int:
    """A fresh 128-bit, time-sortable object id (ULID layout: 48-bit ms time, 80 random bits)."""
    time_ms = time.time_ns() // 1_000_000
    return (time_ms << 80) | int.from_bytes(os.urandom(10), "big")


def transfer_id(*, object_id: int, leg: Leg) -> int:
    """The transfer id of `leg` for the API object `object_id`: a keyed hash, never 0 or max."""
    if not 0 < object_id <= u128_max:
        raise ValueError(f"object_id must be a positive u128, got {object_id}")
    digest = hashlib.blake2b(
        object_id.to_bytes(16, "big") + int(leg).to_bytes(2, "big"),
        digest_size=16,
        person=b"kovra.transfer",
    ).digest()
    value = int.from_bytes(digest, "big")
    # 0 and u128 max are reserved by TigerBeetle; the chance is 2^-127, but never is cheaper.
    if value in (0, u128_max):
        value = 1
    return value


def transfers_query(
    *,
    limit: int,
    user_data_128: int = 0,
    code: int = 0,
    after_ns: int = 0,
    before_ns: int = 0,
) -> tb.QueryFilter:
    """A `query_transfers` filter: an object's transfers (its id is their `user_data_128`),
    of one `code`, strictly after `after_ns` and up to `before_ns` (ledger timestamps); 0
    leaves a field out."""
    return tb.QueryFilter(
        user_data_128=user_data_128,
        user_data_64=0,
        user_data_32=0,
        ledger=0,
        code=code,
        timestamp_min=after_ns + 1 if after_ns else 0,
        timestamp_max=before_ns,
        limit=limit,
        flags=tb.QueryFilterFlags.NONE,
    )


def linked(transfers: list[tb.Transfer]) -> list[tb.Transfer]:
    """The transfers as one chain: every one but the last carries the LINKED flag, so
    TigerBeetle applies all of them or none."""
    ensure(bool(transfers), "a chain has at least one transfer")
    last = len(transfers) - 1
    linked_flag = tb.TransferFlags.LINKED
    # A transfer built with the flag already (`Payouts.reserve` does) is kept as it is.
    return [
        _with_flags(t, t.flags | linked_flag) if i < last and not t.flags & linked_flag else t
        for i, t in enumerate(transfers)
    ]


def _with_flags(transfer: tb.Transfer, flags: tb.TransferFlags) -> tb.Transfer:
    return tb.Transfer(
        id=transfer.id,
        debit_account_id=transfer.debit_account_id,
        credit_account_id=transfer.credit_account_id,
        amount=transfer.amount,
        pending_id=transfer.pending_id,
        user_data_128=transfer.user_data_128,
        user_data_64=transfer.user_data_64,
        user_data_32=transfer.user_data_32,
        timeout=transfer.timeout,
        ledger=transfer.ledger,
        code=transfer.code,
        flags=flags,
        timestamp=transfer.timestamp,
    )
