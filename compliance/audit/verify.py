"""Verifying the audit trail: every record's hashes and links recomputed, in seq order.

A table owner can get past the triggers that make `audit_records` append-only; what they
change is then found here, at the exact record: a missing seq, a record that does not hold
its predecessor's hash, fields that do not match their payload hash, or a record hash that
is not the hash of its fields (the definitions are `compliance.audit.chain`'s). `kovra audit
verify` runs it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

import asyncpg
import msgspec

from compliance.audit.chain import (
    Source,
    canonical_payload,
    connection_from,
    genesis_hash,
    record_columns,
    record_hash,
)

# Rows fetched per round trip while verifying.
verify_batch_size = 1_000

VerifyFailure = Literal["seq_gap", "chain_broken", "payload_altered", "record_hash_mismatch"]

_select_all = f"SELECT {record_columns} FROM audit_records ORDER BY seq"  # noqa: S608


class VerifyResult(msgspec.Struct, frozen=True, kw_only=True):
    """`ok`, or the first broken record: `broken_seq` (for a gap, the first missing seq),
    `reason` and a human `message`. `last_seq`/`head_hash` (hex) are those of the last
    record that verified; anchoring them elsewhere also exposes a truncated tail."""

    ok: bool
    records_checked: int
    last_seq: int
    head_hash: str
    broken_seq: int | None = None
    reason: VerifyFailure | None = None
    message: str = ""


async def verify(source: Source) -> VerifyResult:
    """Recompute every record's hashes and links in seq order, on one snapshot."""
    expected_seq, head = 1, genesis_hash
    async with (
        connection_from(source) as connection,
        connection.transaction(isolation="repeatable_read", readonly=True),
    ):
        async for row in connection.cursor(_select_all, prefetch=verify_batch_size):
            broken = _find_break(row, expected_seq=expected_seq, previous_hash=head)
            if broken is not None:
                reason, message = broken
                return VerifyResult(
                    ok=False,
                    records_checked=expected_seq - 1,
                    last_seq=expected_seq - 1,
                    head_hash=head.hex(),
                    broken_seq=expected_seq,
                    reason=reason,
                    message=message,
                )
            expected_seq, head = expected_seq + 1, bytes(row["record_hash"])
    return VerifyResult(
        ok=True, records_checked=expected_seq - 1, last_seq=expected_seq - 1, head_hash=head.hex()
    )


def _find_break(
    row: asyncpg.Record, *, expected_seq: int, previous_hash: bytes
) -> tuple[VerifyFailure, str] | None:
    seq = int(row["seq"])
    if seq != expected_seq:
        return "seq_gap", f"seq {expected_seq} is missing; the next record is seq {seq}"
    if bytes(row["previous_hash"]) != previous_hash:
        return "chain_broken", f"seq {seq} does not hold the record_hash of seq {seq - 1}"
    payload_hash = _recomputed_payload_hash(row)
    if payload_hash != bytes(row["payload_hash"]):
        return "payload_altered", f"seq {seq}'s fields do not match its payload_hash"
    recomputed = record_hash(
        previous_hash=previous_hash,
        payload_hash=payload_hash,
        seq=seq,
        recorded_at=row["recorded_at"],
    )
    if recomputed != bytes(row["record_hash"]):
        return "record_hash_mismatch", f"seq {seq}'s record_hash is not the hash of its fields"
    return None


def _recomputed_payload_hash(row: asyncpg.Record) -> bytes | None:
    """None when the stored details cannot even be read back as canonical JSON."""
    try:
        payload = canonical_payload(
            actor=row["actor"],
            action=row["action"],
            target=row["target"],
            details=json.loads(row["details"]),
            recorded_at=row["recorded_at"],
        )
    except ValueError:  # e.g. a number too large for a float, or too many digits.
        return None
    return hashlib.sha256(payload).digest()
