"""Rows as the API shows them (answers and event payloads alike), and bank details masked
for showing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, cast

import msgspec

from gateway.collections import wire
from gateway.collections.records import CollectionRow, MandateRow
from gateway.http.ids import encode_id

# Identifiers that name an account are shown by their last characters only; routing codes
# (a BIC, a sort code, a bank code) name a bank, not a customer, and are shown whole.
masked_fields = frozenset({"iban", "account_number"})
shown_characters = 4
customer_prefix = "cus"


def mask_bank_details(bank_details: Mapping[str, str]) -> dict[str, str]:
    """The bank details with every account identifier reduced to its last four characters."""
    return {
        name: ("•" * 4 + value[-shown_characters:]) if name in masked_fields else value
        for name, value in bank_details.items()
    }


def mandate_view(row: MandateRow) -> wire.Mandate:
    return wire.Mandate(
        id=encode_id("mdt", row.id.int),
        customer_id=encode_id(customer_prefix, row.customer_id.int),
        provider=row.provider,
        currency=row.currency,
        status=cast(wire.MandateStatus, row.status),
        reference=row.reference,
        bank_details=row.bank_details_masked,
        provider_reference=row.provider_reference,
        failure_code=row.failure_code,
        failure_description=row.failure_description,
        consent_accepted_at=row.consent_accepted_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def collection_view(row: CollectionRow) -> wire.Collection:
    return wire.Collection(
        id=encode_id("col", row.id.int),
        mandate_id=encode_id("mdt", row.mandate_id.int),
        provider=row.provider,
        status=cast(wire.CollectionStatus, row.status),
        amount=row.amount_minor,
        currency=row.currency,
        reference=row.reference,
        end_to_end_id=row.end_to_end_id,
        collection_date=row.collection_date,
        sequence_type=cast(Literal["first", "recurring"] | None, row.sequence_type),
        provider_reference=row.provider_reference,
        failure_code=row.failure_code,
        failure_description=row.failure_description,
        returned_amount=row.returned_minor,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def payload(view: msgspec.Struct) -> dict[str, Any]:
    """An answer as an event's payload."""
    encoded: dict[str, Any] = msgspec.to_builtins(view)
    return encoded
