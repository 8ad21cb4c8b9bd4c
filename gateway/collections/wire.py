"""The JSON shapes of mandates, collections, their messages, and the providers'
notifications in."""

from __future__ import annotations

import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from gateway.http.ids import id_pattern
from gateway.http.wire import (
    CurrencyCode,
    IssuedCurrencyCode,
    PublicId,
    Reference,
    Timestamp,
    printable_text_pattern,
)

# The largest amount one collection may pull, in minor units: a direct debit is a retail
# instrument, and a bound stops a typo from debiting a customer's whole account.
collection_amount_minor_max = 100_000_000_00
consent_ip_length_max = 64
consent_user_agent_length_max = 512
bank_detail_fields_max = 4

# A mandate named in a request body (a pull's, a schedule's): the document gives the pattern
# of its id, so a malformed one is refused for its shape, naming the field; one of the right
# shape that names no mandate of the tenant's is `not_found`.
MandateId = Annotated[str, Meta(pattern=id_pattern("mdt"), description="an id starting mdt_")]
CollectionAmount = Annotated[
    int,
    Meta(ge=1, le=collection_amount_minor_max, description="integer amount in minor units"),
]
ProviderName = Literal["paywithaccount", "sepa_dd", "bacs_dd"]
provider_names: tuple[str, ...] = ProviderName.__args__  # type: ignore[attr-defined]
MandateStatus = Literal["pending", "active", "failed", "deactivated", "expired"]
mandate_statuses: tuple[str, ...] = MandateStatus.__args__  # type: ignore[attr-defined]
CollectionStatus = Literal["pending", "succeeded", "failed", "returned"]
collection_statuses: tuple[str, ...] = CollectionStatus.__args__  # type: ignore[attr-defined]


class Consent(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """When, from where and with what the customer accepted the mandate."""

    accepted_at: Annotated[
        datetime.datetime, Meta(tz=True, extra_json_schema={"format": "date-time"})
    ]
    ip: Annotated[
        str, Meta(min_length=2, max_length=consent_ip_length_max, pattern=r"^[0-9A-Fa-f.:]+$")
    ]
    user_agent: Annotated[
        str,
        Meta(
            min_length=1, max_length=consent_user_agent_length_max, pattern=printable_text_pattern
        ),
    ]


class MandateCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    customer_id: PublicId
    provider: ProviderName
    currency: CurrencyCode
    bank_details: Annotated[
        dict[Annotated[str, Meta(max_length=32)], Annotated[str, Meta(max_length=64)]],
        Meta(min_length=1, max_length=bank_detail_fields_max),
    ]
    reference: Reference
    consent: Consent


class MandateDeactivate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Deactivating takes no fields; an empty object (or no body) is accepted."""


class CollectionCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    amount: CollectionAmount
    reference: Reference
    collection_date: datetime.date | None = None


class Mandate(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: str = "mandate"
    customer_id: str
    provider: str
    currency: IssuedCurrencyCode
    status: MandateStatus
    reference: str
    bank_details: dict[str, str]  # Masked: the last four characters of each identifier.
    provider_reference: str | None
    failure_code: str | None
    failure_description: str | None
    consent_accepted_at: Timestamp
    created_at: Timestamp
    updated_at: Timestamp


class MandatePage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[Mandate]
    next_cursor: str | None


class Collection(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: str = "collection"
    mandate_id: str
    provider: str
    status: CollectionStatus
    amount: int
    currency: IssuedCurrencyCode
    reference: str
    end_to_end_id: str
    collection_date: datetime.date
    sequence_type: Literal["first", "recurring"] | None
    provider_reference: str | None
    failure_code: str | None
    failure_description: str | None
    returned_amount: int | None
    created_at: Timestamp
    updated_at: Timestamp


class CollectionPage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[Collection]
    next_cursor: str | None


class CollectionMessage(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    run_id: str
    xml: str
    created_at: Timestamp


class CollectionMessageList(msgspec.Struct, frozen=True, kw_only=True):
    data: list[CollectionMessage]


class NotificationReceipt(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to a provider's notification: stored now, or stored before (a replay)."""

    received: bool = True
    duplicate: bool
