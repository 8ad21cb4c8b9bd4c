"""`RemoteLedgerClient` validates creates by packing them: `struct` refuses exactly what the
field-by-field range checks (`ledger.embedded.client._validate`, the native client's
`validate_uint`) refuse. For transfers and accounts whose fields are drawn across and just
beyond their ranges (hypothesis), `_packed` either returns the journal's packing, when every
check passes, or raises the `IntegerOverflowError` the checks raise, with the same message
naming the same first field."""

from __future__ import annotations

from typing import Any

import pytest
import tigerbeetle as tb
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.embedded.client import _account_fields, _transfer_fields, _validate
from ledger.embedded.journal import pack_accounts, pack_transfers
from ledger.remote.client import _packed


def around(bits: int) -> st.SearchStrategy[int]:
    """Values in range, at its edges, and just outside it on either side."""
    top = (1 << bits) - 1
    return st.one_of(
        st.integers(min_value=0, max_value=top),
        st.sampled_from([0, top, top + 1, -1, -(1 << bits), top << 1]),
    )


def events(factory: Any, fields: tuple[tuple[str, int], ...]) -> st.SearchStrategy[Any]:
    values = {name: around(bits) for name, bits in fields if name != "flags"}
    return st.builds(factory, flags=st.integers(0, (1 << 16) - 1), **values)


def validation_error(items: list[Any], fields: tuple[tuple[str, int], ...]) -> str | None:
    try:
        for item in items:
            _validate(item, fields)
    except tb.IntegerOverflowError as error:
        return str(error)
    return None


@settings(max_examples=400)
@given(st.lists(events(tb.Transfer, _transfer_fields), min_size=1, max_size=4))
def test_transfers_are_refused_exactly_as_the_range_checks_refuse(items: list[Any]) -> None:
    expected = validation_error(items, _transfer_fields)
    if expected is None:
        assert _packed(pack_transfers, items, _transfer_fields) == pack_transfers(items)
    else:
        with pytest.raises(tb.IntegerOverflowError) as raised:
            _packed(pack_transfers, items, _transfer_fields)
        assert str(raised.value) == expected


@settings(max_examples=200)
@given(st.lists(events(tb.Account, _account_fields), min_size=1, max_size=4))
def test_accounts_are_refused_exactly_as_the_range_checks_refuse(items: list[Any]) -> None:
    expected = validation_error(items, _account_fields)
    if expected is None:
        assert _packed(pack_accounts, items, _account_fields) == pack_accounts(items)
    else:
        with pytest.raises(tb.IntegerOverflowError) as raised:
            _packed(pack_accounts, items, _account_fields)
        assert str(raised.value) == expected
