"""The tamper-evident audit trail of SPEC §8: appending to its hash chain.

Every admin and compliance action must leave a record that nobody, the application
included, can rewrite without it being noticed. Records live in `audit_records` (migration
0004), whose triggers refuse UPDATE, DELETE and TRUNCATE; this module makes any change that
gets past them (a table owner disabling a trigger) detectable, by chaining the records with
SHA-256:

    payload       = canonical_payload(actor, action, target, details, recorded_at): the JSON
                    object {"action", "actor", "details", "recorded_at", "target"} with keys
                    sorted by code point at every level, no whitespace, non-ASCII characters
                    unescaped, encoded as UTF-8; recorded_at is UTC RFC 3339 with
                    microseconds, e.g. "2025-01-02T03:04:05.000006Z".
    payload_hash  = SHA-256(payload)
    record_hash   = SHA-256(previous_hash || payload_hash || seq || recorded_at), where
                    previous_hash and payload_hash are the 32 raw bytes, seq is 8 bytes
                    unsigned big-endian and recorded_at is the ASCII text above.
    previous_hash = the record_hash of seq - 1; 32 zero bytes for seq 1.

`seq` is gap-free: `append` takes a transaction-scoped advisory lock, reads the last record
and inserts seq + 1, so appenders in any number of processes form one chain. recorded_at is
the database clock, never earlier than the previous record's, so a time range is a
contiguous run of the chain. `compliance.audit.verify` walks the chain in seq order and
reports the first broken record; `compliance.audit.export` writes a time range as JSON Lines
with a checksum file. Both recompute hashes with this module's definitions.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Mapping
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

from ledger.invariants import ensure, unreachable

# "kovraaud" in ASCII: the advisory lock key every appender serialises on. It differs from
# the migration lock key ("kovra"), so appending never waits for `kovra migrate`.
audit_lock_key = 0x6B6F767261617564
# Field bounds; the same numbers are CHECKs in migration 0004.
actor_length_max = 200
action_length_max = 64
target_length_max = 200
# Bounds on `details`: its canonical JSON in bytes, and how deeply it may nest.
details_bytes_max = 16_384
details_depth_max = 16
hash_length = 32
seq_length = 8
genesis_hash = bytes(hash_length)

Source = asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy
Executor = asyncpg.Connection | PoolConnectionProxy

# A stored record's columns, as `verify` and `export` read them back.
record_columns = (
    "seq, recorded_at, actor, action, target, details::text AS details, "
    "payload_hash, previous_hash, record_hash"
)
_head_query = """
    SELECT GREATEST(clock_timestamp(), last.recorded_at) AS recorded_at,
           COALESCE(last.seq, 0) AS seq, last.record_hash
      FROM (SELECT 1) AS one
      LEFT JOIN (SELECT seq, recorded_at, record_hash FROM audit_records
                  ORDER BY seq DESC LIMIT 1) AS last ON true"""
_insert = """
    INSERT INTO audit_records (seq, recorded_at, actor, action, target, details,
                               payload_hash, previous_hash, record_hash)
    VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7, $8, $9)"""


class AuditInputError(ValueError):
    """An audit record was refused: a field is empty, too long or not representable."""


class AuditRecord(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    recorded_at: datetime.datetime
    actor: str
    action: str
    target: str
    details: dict[str, object]
    payload_hash: bytes
    previous_hash: bytes
    record_hash: bytes


# --------------------------------------------------------------------------------------
# Hashing.


def rfc3339(moment: datetime.datetime) -> str:
    """UTC, microseconds, `Z`: the one text form of a time inside hashed data."""
    ensure(moment.tzinfo is not None, "audit times are timezone-aware")
    utc = moment.astimezone(datetime.UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


def canonical_json(value: object) -> bytes:
    """Sorted keys, no whitespace, UTF-8. `value` must already be plain JSON data."""
    text = json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return text.encode("utf-8")


def canonical_payload(
    *,
    actor: str,
    action: str,
    target: str,
    details: Mapping[str, object],
    recorded_at: datetime.datetime,
) -> bytes:
    fields = {
        "action": action,
        "actor": actor,
        "details": details,
        "recorded_at": rfc3339(recorded_at),
        "target": target,
    }
    return canonical_json(fields)


def record_hash(
    *, previous_hash: bytes, payload_hash: bytes, seq: int, recorded_at: datetime.datetime
) -> bytes:
    ensure(len(previous_hash) == hash_length, "previous_hash is a SHA-256")
    ensure(len(payload_hash) == hash_length, "payload_hash is a SHA-256")
    ensure(seq >= 1, "seq starts at 1")
    material = (
        previous_hash
        + payload_hash
        + seq.to_bytes(seq_length, "big")
        + rfc3339(recorded_at).encode("ascii")
    )
    return hashlib.sha256(material).digest()


# --------------------------------------------------------------------------------------
# Input: bounded text and plain-JSON details.


def _bounded_text(name: str, value: object, maximum: int) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= maximum:
        raise AuditInputError(f"{name} must be text of 1 to {maximum} characters")
    return _storable(name, value)


def _storable(name: str, text: str) -> str:
    # Postgres text and jsonb cannot hold NUL, and UTF-8 cannot hold lone surrogates.
    if "\x00" in text:
        raise AuditInputError(f"{name} contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise AuditInputError(f"{name} is not valid Unicode") from None
    return text


def normalise_details(details: Mapping[str, object]) -> tuple[dict[str, object], bytes]:
    """`details` as plain JSON data, and its canonical JSON. Datetimes, dates, Decimals,
    UUIDs and floats become strings: jsonb would not give every float back as the same JSON
    text, and a record must hash the same when it is read back."""
    if not isinstance(details, Mapping):
        raise AuditInputError("details must be a JSON object")
    plain = _plain_object(details, depth=0)
    encoded = canonical_json(plain)
    if len(encoded) > details_bytes_max:
        raise AuditInputError(f"details exceed {details_bytes_max} bytes as JSON")
    return plain, encoded


def _plain_object(mapping: Mapping[Any, object], *, depth: int) -> dict[str, object]:
    return {_key(key): _plain(item, depth=depth + 1) for key, item in mapping.items()}


def _plain(value: object, *, depth: int) -> object:
    if depth > details_depth_max:
        raise AuditInputError(f"details nest deeper than {details_depth_max} levels")
    if isinstance(value, Mapping):
        return _plain_object(value, depth=depth)
    if isinstance(value, list | tuple):
        return [_plain(item, depth=depth + 1) for item in value]
    return _plain_scalar(value)


def _plain_scalar(value: object) -> object:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return _storable("details", str(value))
    if isinstance(value, float | Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    raise AuditInputError(f"details hold a {type(value).__name__}, which is not JSON data")


def _key(key: object) -> str:
    if not isinstance(key, str):
        raise AuditInputError("details keys must be strings")
    return _storable("details key", str(key))


# --------------------------------------------------------------------------------------
# Append.


@contextlib.asynccontextmanager
async def connection_from(source: Source) -> AsyncIterator[Executor]:
    """A connection of the pool `source` for the block, or `source` itself."""
    if isinstance(source, asyncpg.Pool):
        async with source.acquire() as connection:
            yield connection
    else:
        yield source


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """One record to append, before the chain gives it a seq, a time and hashes."""

    actor: str
    action: str
    target: str
    details: Mapping[str, object]


def check_fields(*, actor: str, action: str, target: str) -> tuple[str, str, str]:
    """The three text fields, refused with `AuditInputError` unless storable and bounded."""
    return (
        _bounded_text("actor", actor, actor_length_max),
        _bounded_text("action", action, action_length_max),
        _bounded_text("target", target, target_length_max),
    )


async def append(
    source: Source, *, actor: str, action: str, target: str, details: Mapping[str, object]
) -> AuditRecord:
    """Append one record to the chain and return it.

    Given a connection already in a transaction, the record commits (and the advisory lock
    is released) with that transaction, so keep it short: every appender waits for it. That
    transaction must be READ COMMITTED, so the head read after the lock is current.
    """
    entry = Entry(actor=actor, action=action, target=target, details=details)
    async with connection_from(source) as connection, connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", audit_lock_key)
        (record,) = await append_locked(connection, [entry])
    return record


async def append_locked(connection: Executor, entries: list[Entry]) -> list[AuditRecord]:
    """Chain `entries` after the current head, in order, with one insert round trip.

    The caller holds the chain's advisory lock (`audit_lock_key`) in the transaction that
    `connection` is in; every entry is checked before anything is written."""
    checked = [
        (
            *check_fields(actor=e.actor, action=e.action, target=e.target),
            *normalise_details(e.details),
        )
        for e in entries
    ]
    ensure(bool(checked), "append at least one entry")
    head = await connection.fetchrow(_head_query)
    if head is None:
        unreachable("the head query always returns one row")
    seq, previous_hash = int(head["seq"]), bytes(head["record_hash"] or genesis_hash)
    records: list[AuditRecord] = []
    for actor, action, target, plain, _ in checked:
        seq += 1
        record = _chained(
            seq=seq,
            previous_hash=previous_hash,
            recorded_at=head["recorded_at"],
            fields=(actor, action, target, plain),
        )
        records.append(record)
        previous_hash = record.record_hash
    await connection.executemany(
        _insert,
        [
            (
                r.seq,
                r.recorded_at,
                r.actor,
                r.action,
                r.target,
                encoded.decode("utf-8"),
                r.payload_hash,
                r.previous_hash,
                r.record_hash,
            )
            for r, (*_, encoded) in zip(records, checked, strict=True)
        ],
    )
    return records


def _chained(
    *,
    seq: int,
    previous_hash: bytes,
    recorded_at: datetime.datetime,
    fields: tuple[str, str, str, dict[str, object]],
) -> AuditRecord:
    actor, action, target, details = fields
    payload = canonical_payload(
        actor=actor, action=action, target=target, details=details, recorded_at=recorded_at
    )
    payload_hash = hashlib.sha256(payload).digest()
    return AuditRecord(
        seq=seq,
        recorded_at=recorded_at,
        actor=actor,
        action=action,
        target=target,
        details=details,
        payload_hash=payload_hash,
        previous_hash=previous_hash,
        record_hash=record_hash(
            previous_hash=previous_hash, payload_hash=payload_hash, seq=seq, recorded_at=recorded_at
        ),
    )


async def record_admin_action(
    pool: asyncpg.Pool, *, actor: str, action: str, target: str, details: dict[str, Any]
) -> None:
    """Every admin action is written to the hash-chained audit trail before it is done."""
    await append(pool, actor=actor, action=action, target=target, details=details)
