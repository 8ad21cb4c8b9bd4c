"""`PackedClientAsync` hands the native TigerBeetle client the very bytes its own packing builds.

Proves, for any accounts and transfers whose fields are in range (hypothesis), that
`packed_events` is byte for byte the library's `CAccount`/`CTransfer` array; that a value out
of its field's range (negative, or too wide: u128, u64, u32, u16) raises
`tb.IntegerOverflowError` exactly where the library's packing raises it; and that the packet
`PackedClientAsync` acquires carries those bytes (read back through the packet's own pointer
after a garbage collection, so the buffer is kept alive by the packet), with the operation and
status the library sets, while operations it does not pack (lookups) keep the library's path.
The client is real and never connects: acquiring a packet sends nothing.
"""

from __future__ import annotations

import ctypes
import dataclasses
import gc
from collections.abc import Callable
from typing import Any

import pytest
import tigerbeetle as tb
from hypothesis import given, settings
from hypothesis import strategies as st
from tigerbeetle import bindings
from tigerbeetle.lib import c_uint128

from ledger.clients.codec import account_fields, transfer_fields
from ledger.clients.tigerbeetle import PackedClientAsync, packed_events
from tests.ledger.conformance.helpers import transfer
from tests.ledger.events import events, library_bytes

transfers = events(tb.Transfer, transfer_fields)
accounts = events(tb.Account, account_fields)


@settings(max_examples=300)
@given(st.lists(transfers, max_size=20))
def test_transfers_pack_like_the_library(items: list[tb.Transfer]) -> None:
    packed = packed_events(items, bindings.CTransfer)
    assert bytes(packed) == library_bytes(items, bindings.CTransfer)


@settings(max_examples=300)
@given(st.lists(accounts, max_size=20))
def test_accounts_pack_like_the_library(items: list[tb.Account]) -> None:
    packed = packed_events(items, bindings.CAccount)
    assert bytes(packed) == library_bytes(items, bindings.CAccount)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", -1),
        ("id", 1 << 128),
        ("amount", 1 << 128),
        ("user_data_128", -(1 << 100)),
        ("user_data_64", 1 << 64),
        ("timeout", 1 << 32),
        ("ledger", -1),
        ("code", 1 << 16),
        ("timestamp", 1 << 64),
    ],
)
def test_out_of_range_fields_raise_the_library_error(field: str, value: int) -> None:
    out_of_range: dict[str, Any] = {field: value}
    in_range = transfer(2, 3, 10)
    items = [in_range, dataclasses.replace(in_range, **out_of_range)]
    with pytest.raises(tb.IntegerOverflowError):
        library_bytes(items, bindings.CTransfer)
    with pytest.raises(tb.IntegerOverflowError, match="CTransfer field is out of range"):
        packed_events(items, bindings.CTransfer)


@pytest.fixture
async def client() -> Any:
    # Port 1 never answers; creating the client and acquiring packets sends nothing.
    native = PackedClientAsync(cluster_id=0, replica_addresses="127.0.0.1:1")
    yield native
    await native.close()


def packet_bytes(inflight: Any) -> bytes:
    return ctypes.string_at(inflight.packet.data, inflight.packet.data_size)


async def test_the_packet_carries_the_packed_transfers(client: PackedClientAsync) -> None:
    items = [transfer(2, 3, n * 100, id=n, flags=tb.TransferFlags.LINKED) for n in (1, 2)]
    items.append(transfer(2, 3, 10, id=3, user_data_128=(1 << 127) + 5))
    acquire: Callable[..., Any] = client._acquire_packet
    inflight = acquire(
        bindings.Operation.CREATE_TRANSFERS,
        items,
        bindings.CTransfer,
        bindings.CCreateTransferResult,
    )
    gc.collect()  # The packed buffer must live as long as the packet, not the call.
    assert packet_bytes(inflight) == library_bytes(items, bindings.CTransfer)
    assert inflight.packet.operation == bindings.Operation.CREATE_TRANSFERS
    assert inflight.packet.status == bindings.PacketStatus.OK
    assert inflight.packet.user_data > 0
    assert inflight.c_result_type is bindings.CCreateTransferResult


async def test_lookups_keep_the_library_packing(client: PackedClientAsync) -> None:
    ids = [1, (1 << 128) - 1]
    acquire: Callable[..., Any] = client._acquire_packet
    inflight = acquire(bindings.Operation.LOOKUP_ACCOUNTS, ids, c_uint128, bindings.CAccount)
    expected = bytes((c_uint128 * 2)(*map(c_uint128.from_param, ids)))
    assert packet_bytes(inflight) == expected
