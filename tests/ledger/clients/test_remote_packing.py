"""`RemoteLedgerClient` validates creates by packing them: `struct` refuses exactly what the
field-by-field range checks (`ledger.clients.codec.validate`, the native client's
`validate_uint`) refuse. For transfers and accounts whose fields are drawn across and just
beyond their ranges (hypothesis), `_packed` either returns, when every check passes, the very
bytes TigerBeetle's own client writes for them (its `CTransfer`/`CAccount` structures, which
share no code with Kovra's codec), or raises the `IntegerOverflowError` the checks raise,
with the same message naming the same first field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import tigerbeetle as tb
from hypothesis import given, settings
from hypothesis import strategies as st
from tigerbeetle import bindings

from ledger.clients.codec import (
    Fields,
    account_fields,
    pack_accounts,
    pack_transfers,
    transfer_fields,
    validate,
)
from ledger.clients.remote import _packed
from tests.ledger.events import around_range, events, library_bytes


def validation_error(items: list[Any], fields: Fields) -> str | None:
    try:
        for item in items:
            validate(item, fields)
    except tb.IntegerOverflowError as error:
        return str(error)
    return None


def assert_refused_like_the_checks(
    items: list[Any], pack: Callable[[list[Any]], bytes], fields: Fields, library_type: Any
) -> None:
    expected = validation_error(items, fields)
    if expected is None:
        assert _packed(pack, items, fields) == library_bytes(items, library_type)
        return
    with pytest.raises(tb.IntegerOverflowError) as raised:
        _packed(pack, items, fields)
    assert str(raised.value) == expected


@settings(max_examples=400)
@given(st.lists(events(tb.Transfer, transfer_fields, around_range), min_size=1, max_size=4))
def test_transfers_are_refused_exactly_as_the_range_checks_refuse(items: list[Any]) -> None:
    assert_refused_like_the_checks(items, pack_transfers, transfer_fields, bindings.CTransfer)


@settings(max_examples=200)
@given(st.lists(events(tb.Account, account_fields, around_range), min_size=1, max_size=4))
def test_accounts_are_refused_exactly_as_the_range_checks_refuse(items: list[Any]) -> None:
    assert_refused_like_the_checks(items, pack_accounts, account_fields, bindings.CAccount)
