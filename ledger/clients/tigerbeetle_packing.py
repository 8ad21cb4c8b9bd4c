"""The native TigerBeetle client, with accounts and transfers packed by `struct`.

`tigerbeetle.ClientAsync` turns every `Transfer` into a `CTransfer` field by field: twelve
range checks and six `c_uint128` objects, about 5 µs a transfer, so 15 µs for a payout's
three legs, all of it on the gateway's event loop. The bytes it builds are TigerBeetle's
own 128-byte layout, which the embedded journal already packs with one `struct` call per
event (`ledger.embedded.journal`). `PackedClientAsync` packs with those and hands the native
client the bytes, ten times faster. A value out of its field's range raises
`tb.IntegerOverflowError`, as the library's own packing does. Everything else (the packet,
its submission and completion, the decoding of results) stays the library's.

The library offers no public way to hand it packed events, so this overrides its private
`_acquire_packet`, of the version pinned in `uv.lock`. An upgrade that changed it would fail
`tests/ledger/clients/test_tigerbeetle_packing.py`, which reads the bytes back through the packet,
before it could reach a cluster.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Callable
from typing import Any, Final

import tigerbeetle as tb
from tigerbeetle import bindings
from tigerbeetle.client import InflightPacket

from ledger.embedded.journal import event_size, pack_accounts, pack_transfers
from ledger.invariants import ensure

# The event types this module packs, and how. Any other operation (lookups, queries) goes
# through the library's packing unchanged: those carry ids or one filter, not batches.
_packers: Final[dict[type[ctypes.Structure], Callable[[list[Any]], bytes]]] = {
    bindings.CTransfer: pack_transfers,
    bindings.CAccount: pack_accounts,
}
ensure(
    all(ctypes.sizeof(event_type) == event_size for event_type in _packers),
    "the library's events are TigerBeetle's 128-byte layout",
)


def packed_events(events: list[Any], event_type: type[ctypes.Structure]) -> ctypes.Array[Any]:
    """`events` as a ctypes array of `event_type`, over one buffer packed by `struct`."""
    try:
        payload = bytearray(_packers[event_type](events))
    except struct.error as error:
        # `struct` refuses a negative value or one too wide for its field, as the library
        # does, but cannot name the field: the message says which kind of event it was.
        raise tb.IntegerOverflowError(
            f"a {event_type.__name__} field is out of range: {error}"
        ) from None
    ensure(len(payload) == event_size * len(events), "one 128-byte record per event")
    return (event_type * len(events)).from_buffer(payload)


class PackedClientAsync(tb.ClientAsync):
    """`tb.ClientAsync` whose creates carry events packed by `packed_events`."""

    def _acquire_packet(
        self,
        operation: bindings.Operation,
        operations: Any,
        c_event_type: Any,
        c_result_type: Any,
    ) -> InflightPacket:
        if c_event_type not in _packers:
            return super()._acquire_packet(operation, operations, c_event_type, c_result_type)
        events = packed_events(list(operations), c_event_type)
        # The library fills in the packet (its user data, operation and status) for an empty
        # batch; only the data is replaced. Casting keeps `events`, and through it the
        # buffer, referenced by the packet for as long as the packet lives, exactly as the
        # library's own array is kept.
        inflight = super()._acquire_packet(operation, [], c_event_type, c_result_type)
        inflight.packet.data_size = ctypes.sizeof(events)
        inflight.packet.data = ctypes.cast(events, ctypes.c_void_p)
        return inflight
