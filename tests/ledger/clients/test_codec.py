"""The 128-byte codec packs events in TigerBeetle's own layouts and unpacks them unchanged.

Proves, for accounts and transfers whose fields take any value of their width, extremes
included (hypothesis), that packing gives 128 bytes an event, byte for byte the library's own
`tb_account_t`/`tb_transfer_t`, and that unpacking gives back equal events; and that a u128 is
two little-endian u64 words, low first.
"""

from __future__ import annotations

import tigerbeetle as tb
from hypothesis import given
from hypothesis import strategies as st
from tigerbeetle import bindings

from ledger.clients.codec import (
    event_size,
    pack_accounts,
    pack_transfers,
    unpack_accounts,
    unpack_transfers,
)

u128_max = (1 << 128) - 1


def _uint(bits: int) -> st.SearchStrategy[int]:
    maximum = (1 << bits) - 1
    extremes = sorted({0, 1, maximum, maximum - 1, (1 << (bits // 2)) - 1, 1 << (bits // 2)})
    return st.sampled_from(extremes) | st.integers(min_value=0, max_value=maximum)


accounts_strategy = st.builds(
    tb.Account,
    id=_uint(128),
    debits_pending=_uint(128),
    debits_posted=_uint(128),
    credits_pending=_uint(128),
    credits_posted=_uint(128),
    user_data_128=_uint(128),
    user_data_64=_uint(64),
    user_data_32=_uint(32),
    ledger=_uint(32),
    code=_uint(16),
    flags=_uint(16).map(tb.AccountFlags),
    timestamp=_uint(64),
)
transfers_strategy = st.builds(
    tb.Transfer,
    id=_uint(128),
    debit_account_id=_uint(128),
    credit_account_id=_uint(128),
    amount=_uint(128),
    pending_id=_uint(128),
    user_data_128=_uint(128),
    user_data_64=_uint(64),
    user_data_32=_uint(32),
    timeout=_uint(32),
    ledger=_uint(32),
    code=_uint(16),
    flags=_uint(16).map(tb.TransferFlags),
    timestamp=_uint(64),
)


@given(st.lists(accounts_strategy, max_size=5))
def test_accounts_pack_and_unpack_unchanged(accounts: list[tb.Account]) -> None:
    payload = pack_accounts(accounts)
    assert len(payload) == event_size * len(accounts)
    assert unpack_accounts(payload) == accounts
    # The layout is TigerBeetle's own `tb_account_t`, byte for byte.
    assert payload == b"".join(bytes(bindings.CAccount.from_param(a)) for a in accounts)


@given(st.lists(transfers_strategy, max_size=5))
def test_transfers_pack_and_unpack_unchanged(transfers: list[tb.Transfer]) -> None:
    payload = pack_transfers(transfers)
    assert len(payload) == event_size * len(transfers)
    assert unpack_transfers(payload) == transfers
    assert payload == b"".join(bytes(bindings.CTransfer.from_param(t)) for t in transfers)


def test_u128_is_two_little_endian_u64_low_first() -> None:
    payload = pack_transfers([tb.Transfer(id=(1 << 64) | 2, amount=u128_max)])
    assert payload[0:16] == (2).to_bytes(8, "little") + (1).to_bytes(8, "little")
    assert payload[48:64] == b"\xff" * 16
