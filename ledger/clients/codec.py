"""TigerBeetle's 128-byte account and transfer layouts, and the range of every field.

Three parts of Kovra write accounts and transfers as bytes: the embedded engine's journal,
the TigerBeetle adapter (which hands the native client packed events, ten times faster than
its own packing) and the remote ledger's wire protocol. They all use TigerBeetle's own
layout, so they share this one codec, and the clients that check fields before sending
(embedded, remote) share its range checks, which are the native client's.

Each layout is described once: its fields in order with their widths in bits. A u128 is two
little-endian u64 words, low word first. Both event layouts begin with six u128 fields, which
the codec unpacks by hand: packing is on the path of every payment, and this is the fastest
way `struct` offers.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from operator import attrgetter
from typing import Final, Generic, TypeVar

import tigerbeetle as tb

from ledger.invariants import ensure

event_size: Final = 128
u128_field_count: Final = 6  # Both event layouts begin with six u128 fields.

# A layout's fields in order, as (attribute name, width in bits).
Fields = tuple[tuple[str, int], ...]

account_fields: Final[Fields] = (
    ("id", 128),
    ("debits_pending", 128),
    ("debits_posted", 128),
    ("credits_pending", 128),
    ("credits_posted", 128),
    ("user_data_128", 128),
    ("user_data_64", 64),
    ("user_data_32", 32),
    # A reserved u32, always zero, lies here: `_account_layout` writes it as padding.
    ("ledger", 32),
    ("code", 16),
    ("flags", 16),
    ("timestamp", 64),
)
transfer_fields: Final[Fields] = (
    ("id", 128),
    ("debit_account_id", 128),
    ("credit_account_id", 128),
    ("amount", 128),
    ("pending_id", 128),
    ("user_data_128", 128),
    ("user_data_64", 64),
    ("user_data_32", 32),
    ("timeout", 32),
    ("ledger", 32),
    ("code", 16),
    ("flags", 16),
    ("timestamp", 64),
)
# The filters are checked field by field like events; the remote protocol has its own layouts
# for them (`ledger.remote.protocol`).
account_filter_fields: Final[Fields] = (
    ("account_id", 128),
    ("user_data_128", 128),
    ("user_data_64", 64),
    ("user_data_32", 32),
    ("code", 16),
    ("timestamp_min", 64),
    ("timestamp_max", 64),
    ("limit", 32),
    ("flags", 32),
)
query_filter_fields: Final[Fields] = (
    ("user_data_128", 128),
    ("user_data_64", 64),
    ("user_data_32", 32),
    ("ledger", 32),
    ("code", 16),
    ("timestamp_min", 64),
    ("timestamp_max", 64),
    ("limit", 32),
    ("flags", 32),
)

_account_layout = struct.Struct("<12QQI4xIHHQ")
_transfer_layout = struct.Struct("<12QQIIIHHQ")
_u64_mask: Final = (1 << 64) - 1
_uint_max: Final = {bits: (1 << bits) - 1 for bits in (16, 32, 64, 128)}


def split_u128(value: int) -> tuple[int, int]:
    """`value` as its (low, high) u64 words."""
    return value & _u64_mask, value >> 64


def join_u128(low: int, high: int) -> int:
    return (high << 64) | low


EventT = TypeVar("EventT", tb.Account, tb.Transfer)


class EventCodec(Generic[EventT]):
    """Packs events of one type into TigerBeetle's 128-byte layout, and unpacks them.

    `pack` raises `struct.error` for a field out of its range (negative, or too wide), as
    the range checks would; it does not say which field (`validate` does).
    """

    __slots__ = ("_build", "_flags", "_layout", "_narrow", "_wide")

    def __init__(
        self,
        build: Callable[..., EventT],
        fields: Fields,
        layout: struct.Struct,
        flags: Callable[[int], object],
    ) -> None:
        names = [name for name, _ in fields]
        ensure(layout.size == event_size, "TigerBeetle's events are 128 bytes")
        ensure(
            all(bits == 128 for _, bits in fields[:u128_field_count])
            and all(bits < 128 for _, bits in fields[u128_field_count:]),
            "an event layout begins with its six u128 fields",
        )
        ensure(names[-2:] == ["flags", "timestamp"], "an event layout ends in flags, timestamp")
        ensure(
            len(layout.unpack(bytes(event_size))) == len(fields) + u128_field_count,
            "the layout has one slot per field, two per u128",
        )
        self._build: Callable[..., EventT] = build
        self._flags = flags
        self._layout = layout
        self._wide = attrgetter(*names[:u128_field_count])
        self._narrow = attrgetter(*names[u128_field_count:])

    def pack(self, events: list[EventT]) -> bytes:
        pack = self._layout.pack
        u128_values = self._wide
        other_values = self._narrow
        mask = _u64_mask
        parts = []
        for event in events:
            one, two, three, four, five, six = u128_values(event)
            parts.append(
                pack(
                    one & mask,
                    one >> 64,
                    two & mask,
                    two >> 64,
                    three & mask,
                    three >> 64,
                    four & mask,
                    four >> 64,
                    five & mask,
                    five >> 64,
                    six & mask,
                    six >> 64,
                    *other_values(event),
                )
            )
        return b"".join(parts)

    def unpack(self, payload: bytes) -> list[EventT]:
        build = self._build
        flags = self._flags
        return [
            build(
                words[0] | words[1] << 64,
                words[2] | words[3] << 64,
                words[4] | words[5] << 64,
                words[6] | words[7] << 64,
                words[8] | words[9] << 64,
                words[10] | words[11] << 64,
                *words[12:-2],
                flags(words[-2]),
                words[-1],
            )
            for words in self._layout.iter_unpack(payload)
        ]


accounts: Final = EventCodec(tb.Account, account_fields, _account_layout, tb.AccountFlags)
transfers: Final = EventCodec(tb.Transfer, transfer_fields, _transfer_layout, tb.TransferFlags)
pack_accounts: Final = accounts.pack
unpack_accounts: Final = accounts.unpack
pack_transfers: Final = transfers.pack
unpack_transfers: Final = transfers.unpack


def validate(record: object, fields: Fields) -> None:
    """The native client's `validate_uint`, applied to every field it packs."""
    for name, bits in fields:
        number = int(getattr(record, name))
        # One chained comparison for the common case; the bound is cached per width.
        if not 0 <= number <= _uint_max[bits]:
            if number < 0:
                raise tb.IntegerOverflowError(f"{name}=={number} cannot be negative")
            raise tb.IntegerOverflowError(f"{name}=={number} is too large to fit in {bits} bits")


def validate_ids(ids: list[int]) -> None:
    for number in ids:
        if not 0 <= number < (1 << 128):
            raise tb.IntegerOverflowError(f"id=={number} does not fit in 128 bits")
