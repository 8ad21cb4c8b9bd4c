"""Hypothesis strategies for TigerBeetle's events, drawn field by field from the width tables
the clients check them against (`ledger.clients.codec`), and the oracle their bytes are
compared with: TigerBeetle's own client's packing, which shares no code with Kovra's codec."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st


def in_range(bits: int) -> st.SearchStrategy[int]:
    """Any value a field of `bits` bits holds."""
    return st.integers(min_value=0, max_value=(1 << bits) - 1)


def around_range(bits: int) -> st.SearchStrategy[int]:
    """Values in range, at its edges, and just outside it on either side."""
    top = (1 << bits) - 1
    return st.one_of(in_range(bits), st.sampled_from([0, top, top + 1, -1, -(1 << bits)]))


def events(
    factory: Callable[..., Any],
    fields: tuple[tuple[str, int], ...],
    values: Callable[[int], st.SearchStrategy[int]] = in_range,
) -> st.SearchStrategy[Any]:
    """`factory` (tb.Transfer, tb.Account) with every field of `fields` drawn from `values`;
    flags always within their 16 bits, as the library's flag types are."""
    drawn = {name: values(bits) for name, bits in fields if name != "flags"}
    return st.builds(factory, flags=in_range(16), **drawn)


def library_bytes(items: list[Any], event_type: Any) -> bytes:
    """What `tb.ClientAsync` itself would send for `items` (`bindings.CTransfer` or
    `bindings.CAccount`): TigerBeetle's binary layout as its own client writes it."""
    return bytes((event_type * len(items))(*map(event_type.from_param, items)))
