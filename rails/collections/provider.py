"""The one interface every mandate provider sits behind (SPEC §10).

Money comes in under a mandate: a customer authorises a tenant, through a provider, to pull
from the customer's bank account. The collections domain never talks to a provider directly:
it hands `MandateRequest`s and `CollectionRequest`s to a `MandateProvider` and gets one answer
per request back, in the same order. Providers answer batches (a SEPA collection run is one
pain.008 carrying every collection due), so the operations take a batch of at most
`provider_batch_size_max`; a single request is the batch of one.

An answer is rarely final: a provider accepts a mandate or a collection (`pending`) and says
later, in a notification, what became of it (`ProviderNotification`, verified and parsed by
`rails.collections.notifications`). A lookup asks about one collection whose notification
is late.

Each provider also knows its scheme's rules: which currency it collects, what bank details
a mandate needs (validated before anything is stored, `InvalidBankDetails` naming the
field), and what its reason codes mean. A provider may report the balance of a mandate's
account (`balance`), which balance-threshold triggers read; only the sandbox does so far.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Mapping, Sequence
from typing import Literal, Protocol

import msgspec

from ledger.invariants import ensure

# The most requests one call to a provider carries; callers with more split them.
provider_batch_size_max = 1_000
provider_reference_length_max = 64
reason_code_length_max = 8
object_id_bits = 128


class ProviderName(enum.Enum):
    """The mandate providers Kovra speaks to; the value is the name in URLs and rows."""

    PAYWITHACCOUNT = "paywithaccount"
    SEPA_DD = "sepa_dd"
    BACS_DD = "bacs_dd"


MandateOutcome = Literal["pending", "active", "failed"]
CollectionOutcome = Literal["pending", "succeeded", "failed"]
CollectionStatus = Literal["pending", "succeeded", "failed", "returned"]
SequenceType = Literal["first", "recurring"]
NotificationType = Literal[
    "mandate.active",
    "mandate.failed",
    "collection.succeeded",
    "collection.failed",
    "collection.returned",
]


def _ensure_object_id(value: int, name: str) -> None:
    ensure(0 < value < 1 << object_id_bits, f"{name} is a positive {object_id_bits}-bit id")


class MandateRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Set up one mandate with the provider."""

    mandate_id: int  # Kovra's mandate (128-bit); the provider keys its idempotency on it.
    currency: str
    reference: str  # The tenant's reference (the sandbox providers answer by it).
    bank_details: Mapping[str, str]  # Validated by the provider's `validate_bank_details`.
    account_holder_name: str
    consent_accepted_at: datetime.datetime  # When the customer signed (SEPA: DtOfSgntr).

    def __post_init__(self) -> None:
        _ensure_object_id(self.mandate_id, "mandate_id")


class MandateAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """What the provider said about one mandate request."""

    outcome: MandateOutcome
    provider_reference: str  # The provider's id of the mandate; notifications carry it.
    reason_code: str | None = None  # On `failed`.

    def __post_init__(self) -> None:
        ensure(
            0 < len(self.provider_reference) <= provider_reference_length_max,
            "a provider reference is 1 to 64 characters",
        )
        ensure(
            (self.outcome == "failed") == (self.reason_code is not None),
            "a failed mandate, and only a failed one, carries a reason code",
        )


class CollectionRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Pull one amount under an active mandate."""

    collection_id: int  # Kovra's collection (128-bit); also the provider's idempotency key.
    mandate_id: int
    mandate_provider_reference: str
    mandate_signed_at: datetime.datetime
    currency: str
    amount_minor: int
    reference: str  # The tenant's reference (the sandbox providers answer by it).
    end_to_end_id: str  # Unique per collection; SEPA's EndToEndId.
    sequence_type: SequenceType  # SEPA: FRST for a mandate's first collection, else RCUR.
    bank_details: Mapping[str, str]  # The debtor's, as validated on the mandate.
    account_holder_name: str
    collection_date: datetime.date  # When the debtor's account is debited.

    def __post_init__(self) -> None:
        _ensure_object_id(self.collection_id, "collection_id")
        _ensure_object_id(self.mandate_id, "mandate_id")
        ensure(self.amount_minor > 0, "a collection moves a positive amount")


class CollectionAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """What the provider said about one collection request."""

    outcome: CollectionOutcome
    provider_reference: str  # The provider's id of the collection; notifications carry it.
    reason_code: str | None = None  # On `failed`.

    def __post_init__(self) -> None:
        ensure(
            0 < len(self.provider_reference) <= provider_reference_length_max,
            "a provider reference is 1 to 64 characters",
        )
        ensure(
            (self.outcome == "failed") == (self.reason_code is not None),
            "a failed collection, and only a failed one, carries a reason code",
        )


class CollectionRun(msgspec.Struct, frozen=True, kw_only=True):
    """The answers to one batch of collections, in the requests' order, and the message the
    run sent (a SEPA provider's pain.008; None for providers that send no file)."""

    answers: list[CollectionAnswer]
    message: bytes | None


class CollectionLookup(msgspec.Struct, frozen=True, kw_only=True):
    """A provider's current view of one collection, for a notification that is late."""

    status: CollectionStatus
    reason_code: str | None = None  # On `failed` and `returned`.


class ProviderNotification(msgspec.Struct, frozen=True, kw_only=True):
    """One verified notification from a provider: the provider's event id (a replay carries
    the same one), what happened, and to which object (its `provider_reference`)."""

    provider: ProviderName
    event_id: str
    type: NotificationType
    provider_reference: str
    amount_minor: int | None
    currency: str | None
    reason_code: str | None


class ProviderUnavailable(Exception):
    """The circuit is open or the provider keeps failing: nothing was answered, try later."""


class MandateProvider(Protocol):
    """A mandate provider: its scheme's rules, and the operations of the mandate model."""

    @property
    def name(self) -> ProviderName: ...

    @property
    def currency(self) -> str:
        """The one currency the provider collects (ISO 4217 alphabetic)."""
        ...

    def validate_bank_details(self, bank_details: Mapping[str, str]) -> dict[str, str]:
        """The bank details in their canonical form; `InvalidBankDetails` naming the field
        (`bank_details.<name>`) when one is missing, unknown or invalid."""
        ...

    def reason_description(self, reason_code: str) -> str:
        """What a reason code of this scheme means, in a sentence for an operator."""
        ...

    def is_mandate_fatal(self, reason_code: str) -> bool:
        """Whether a failure or return with this code ends the mandate (the account is
        closed, the mandate unknown at the debtor's bank...): later collections would fail
        too, so the mandate should be deactivated. An unknown code is never fatal."""
        ...

    async def create_mandates(self, requests: Sequence[MandateRequest]) -> list[MandateAnswer]:
        """One answer per request, in order, from one call to the provider. Raises
        `ProviderUnavailable` when the batch as a whole got no answer."""
        ...

    async def collect(self, requests: Sequence[CollectionRequest]) -> CollectionRun:
        """One answer per request, in order, from one call (one collection run)."""
        ...

    async def lookup_collection(self, provider_reference: str) -> CollectionLookup:
        """The provider's current view of one collection."""
        ...

    async def deactivate_mandate(self, provider_reference: str) -> None:
        """Cancel the mandate at the provider; later collections under it are refused
        there too. Deactivating twice is not an error."""
        ...

    async def balance(self, provider_reference: str) -> int | None:
        """The balance of the mandate's account now, in minor units of the provider's
        currency, or None when the provider reports none for it. No scheme's API Kovra
        speaks reports one (open-banking balance feeds are later, SPEC §14): only the
        sandbox does, for mandates set up to."""
        ...
