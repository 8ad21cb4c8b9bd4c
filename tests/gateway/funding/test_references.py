"""A tenant's funding reference is a valid ISO 11649 creditor reference that reads back to
that tenant and no other, however a payer spaces it; every single-character typo and every
swap of two adjacent characters reads back to no tenant at all; and in free text a
reference is found among other words (digits written right after it included), while text
naming two tenants names both."""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st
from stdnum import iso11649

from gateway.funding.references import (
    funding_reference,
    printed,
    tenant_id_max,
    tenant_of,
    tenants_in,
)

tenant_ids = st.integers(min_value=1, max_value=tenant_id_max)
alphabet = string.digits + string.ascii_uppercase


@given(tenant_ids)
def test_a_reference_reads_back_to_its_tenant(tenant_id: int) -> None:
    reference = funding_reference(tenant_id)
    assert iso11649.is_valid(reference)
    assert tenant_of(reference) == tenant_id
    assert tenant_of(printed(reference)) == tenant_id
    assert tenant_of(printed(reference).lower()) == tenant_id
    assert tenants_in([f"payment for invoice 7, ref: {printed(reference)}."]) == {tenant_id}
    assert tenants_in([f"ref {printed(reference)} 2024 invoice 7"]) == {tenant_id}


@given(tenant_ids, st.data())
def test_a_typo_names_no_tenant(tenant_id: int, data: st.DataObject) -> None:
    reference = funding_reference(tenant_id)
    position = data.draw(st.integers(min_value=0, max_value=len(reference) - 1))
    replacement = data.draw(st.sampled_from(alphabet).filter(lambda c: c != reference[position]))
    typo = reference[:position] + replacement + reference[position + 1 :]
    assert tenant_of(typo) is None


@given(tenant_ids, st.data())
def test_a_swap_of_two_adjacent_characters_names_no_tenant(
    tenant_id: int, data: st.DataObject
) -> None:
    reference = funding_reference(tenant_id)
    position = data.draw(st.integers(min_value=0, max_value=len(reference) - 2))
    swapped = (
        reference[:position]
        + reference[position + 1]
        + reference[position]
        + reference[position + 2 :]
    )
    if swapped != reference:
        assert tenant_of(swapped) is None


def test_only_references_kovra_writes_are_read() -> None:
    assert tenant_of("RF18539007547034") is None  # Valid ISO 11649, not a Kovra reference.
    assert tenant_of("RF28KV71") is None  # Valid check digits, not Kovra's length.
    assert tenant_of("RF65KV0000000000000000071") == 71
    assert tenant_of("") is None
    assert tenants_in(["no reference here", "RF"]) == set()
    two = f"{funding_reference(5)} or {funding_reference(6)}"
    assert tenants_in([two]) == {5, 6}
