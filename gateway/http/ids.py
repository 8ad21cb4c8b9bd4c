"""Public object ids: a type prefix and the 128-bit object id in Crockford base32.

`hold_01JD3...` tells a reader what an id names, and the 128-bit value underneath is the
`user_data_128` of the object's ledger transfers. Ids derived from an `Idempotency-Key` are
deterministic, so a retry after a lost response reaches the very same ledger transfers.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import uuid
from typing import Annotated

from asyncpg.pgproto import pgproto
from litestar.params import Parameter

from gateway.http.problems import ProblemError
from ledger.invariants import ensure
from ledger.transfers import new_object_id

_alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_python_digits = "0123456789ABCDEFGHIJKLMNOPQRSTUV"  # What int(text, 32) reads.
# A batch answers thousands of ids at once, so both directions avoid a loop per character:
# encoding looks up ten bits (two characters) at a time, decoding renames Crockford's digits
# into the ones int(text, 32) reads and lets C do the rest.
_pairs = [first + second for first in _alphabet for second in _alphabet]
_pair_shifts = tuple(range(120, -1, -10))
_from_crockford = str.maketrans(
    {**dict(zip(_alphabet, _python_digits, strict=True)), **dict.fromkeys("ILOU", "!")}
)
encoded_length = 26  # ceil(128 / 5)
prefixes = (
    "hold", "dep", "fund", "evt", "quote", "rcp", "tr", "case", "we", "msg", "batch",
    "stmt", "bke", "exc", "cus", "mdt", "col", "ptn", "bkt", "rul", "orc", "sch", "ord",
)  # fmt: skip
# What a not-found problem calls the object each prefix names.
_object_names = {
    "hold": "hold",
    "dep": "deposit",
    "fund": "funding",
    "evt": "event",
    "quote": "quote",
    "rcp": "recipient",
    "tr": "transfer",
    "case": "case",
    "we": "webhook endpoint",
    "msg": "message",
    "batch": "batch",
    "stmt": "bank statement",
    "bke": "bank entry",
    "exc": "exception",
    "mdt": "mandate",
    "col": "collection",
    "cus": "customer",
    "ptn": "partner",
    "bkt": "bucket",
    "rul": "rule",
    "orc": "orchestration",
    "sch": "schedule",
    "ord": "partner order",
}
ensure(set(_object_names) == set(prefixes), "every prefix names its object")
# The prefix of the id each path parameter names, for the OpenAPI document's patterns.
path_parameter_prefixes = {
    "hold_id": "hold",
    "quote_id": "quote",
    "recipient_id": "rcp",
    "transfer_id": "tr",
    "batch_id": "batch",
    "case_id": "case",
    "endpoint_id": "we",
    "event_id": "evt",
    "statement_id": "stmt",
    "exception_id": "exc",
    "mandate_id": "mdt",
    "collection_id": "col",
    "customer_id": "cus",
    "partner_id": "ptn",
    "bucket_id": "bkt",
    "rule_id": "rul",
    "orchestration_id": "orc",
    "schedule_id": "sch",
}
ensure(set(path_parameter_prefixes.values()) <= set(prefixes), "path ids use known prefixes")


# A row id in a path (a tenant's, an API key's): a Postgres `bigint` and never negative, so
# the document says its range and a number past it is a 422, not a query that overflows.
row_id_max = 2**63 - 1
RowIdPath = Annotated[int, Parameter(ge=0, le=row_id_max)]
# The path parameters that are row ids, and their schema in the document (Litestar's would
# write the maximum as a float, which rounds it up to 2**63).
row_id_path_parameters = ("tenant_id", "key_id")
row_id_schema = {"type": "integer", "minimum": 0, "maximum": row_id_max}


def id_pattern(prefix: str) -> str:
    """What `decode_id` reads, as a regular expression: the prefix, then 26 Crockford digits
    in either case, the first at most 7 because 26 digits hold 130 bits and an id has 128."""
    digit = "[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]"
    return f"^{prefix}_[0-7]{digit}{{{encoded_length - 1}}}$"


@functools.lru_cache(maxsize=65_536)
def encode_id(prefix: str, object_id: int) -> str:
    """Remembered: an answer names the same batch, quote and recipient ids many times."""
    pairs = _pairs
    digits = "".join([pairs[(object_id >> shift) & 1023] for shift in _pair_shifts])
    return f"{prefix}_{digits}"


def decode_id(prefix: str, text: str) -> int:
    """The object id, or a 404 problem: a malformed id names no object."""
    head, _, body = text.partition("_")
    # ASCII letters and digits only: int() would also read underscores, spaces and other
    # scripts' digits, none of which an id contains.
    if head != prefix or len(body) != encoded_length or not (body.isascii() and body.isalnum()):
        raise _not_found(prefix, text)
    try:
        value = int(body.upper().translate(_from_crockford), 32)
    except ValueError:
        raise _not_found(prefix, text) from None
    if not 0 < value < (1 << 128):
        raise _not_found(prefix, text)
    return value


def _not_found(prefix: str, text: str) -> ProblemError:
    return ProblemError(404, "not_found", f"no {_object_names[prefix]} with id {text[:64]!r}")


def object_id_for(*, tenant_id: int, kind: str, idempotency_key: str | None) -> int:
    """A fresh id, or with an idempotency key the same id every time for that request."""
    if idempotency_key is None:
        return new_object_id()
    digest = hashlib.blake2b(
        f"{tenant_id}:{kind}:{idempotency_key}".encode(),
        digest_size=16,
        person=b"kovra.object",
    ).digest()
    return int.from_bytes(digest, "big") or 1


def as_uuid(object_id: int) -> uuid.UUID:
    """`object_id` as a UUID for Postgres. asyncpg's own UUID type, which it returns for
    every uuid column and encodes without conversion, is a `uuid.UUID` built in C: about
    0.2 µs against 0.9 for `uuid.UUID(int=...)`, and it prints ten times faster. A transfer
    makes several, so the difference shows in its CPU."""
    return pgproto.UUID(object_id.to_bytes(16, "big"))


def uuid_from_bytes(sixteen_bytes: bytes) -> uuid.UUID:
    """The UUID of 16 bytes (a digest, say), built like `as_uuid`'s."""
    ensure(len(sixteen_bytes) == 16, "a UUID is 16 bytes")
    return pgproto.UUID(sixteen_bytes)


def utc_from_ns(timestamp_ns: int) -> datetime.datetime:
    """A TigerBeetle timestamp (ns since the epoch) as an aware UTC datetime."""
    return datetime.datetime.fromtimestamp(timestamp_ns / 1_000_000_000, tz=datetime.UTC)
