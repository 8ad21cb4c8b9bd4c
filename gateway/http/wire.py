"""The JSON shapes of the tenant and admin APIs: msgspec Structs and their constraints.

Every request Struct forbids unknown fields and bounds every string and number, so bad
input is refused with the offending field named before anything happens.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from gateway.http import ratelimit
from ledger.service import amount_minor_max, hold_timeout_seconds_max

CurrencyCode = Annotated[str, Meta(pattern="^[A-Za-z]{3}$", description="ISO 4217 code")]
AmountMinor = Annotated[
    int, Meta(ge=1, le=amount_minor_max, description="integer amount in minor units")
]
Reference = Annotated[str, Meta(min_length=1, max_length=140)]
TimeoutSeconds = Annotated[int, Meta(ge=0, le=hold_timeout_seconds_max)]
Tier = Literal["starter", "growth", "enterprise"]
Role = Literal["admin", "operator", "read_only", "compliance"]
Region = Literal["EU", "UK", "ID"]
PolicyName = Annotated[str, Meta(min_length=1, max_length=64)]
TenantName = Annotated[str, Meta(min_length=1, max_length=200)]


class DepositCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    currency: CurrencyCode
    amount: AmountMinor
    reference: Reference | None = None


class HoldCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    currency: CurrencyCode
    amount: AmountMinor
    timeout_seconds: TimeoutSeconds = 0
    reference: Reference | None = None


class HoldCapture(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    amount: AmountMinor | None = None


class HoldVoid(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Voiding takes no fields; an empty object (or no body) is accepted."""


class QuoteCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Exactly one of `source_amount` and `target_amount`."""

    source_currency: CurrencyCode
    target_currency: CurrencyCode
    source_amount: AmountMinor | None = None
    target_amount: AmountMinor | None = None


class FxRatesUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Rates as decimal strings by "BASE/QUOTE" pair, observed now unless `observed_at`."""

    rates: Annotated[dict[str, Annotated[str, Meta(max_length=40)]], Meta(max_length=500)]
    observed_at: datetime.datetime | None = None


CountryCode = Annotated[str, Meta(pattern="^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]
PublicId = Annotated[str, Meta(min_length=1, max_length=64)]


class RecipientCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=140)]
    country: CountryCode
    currency: CurrencyCode
    bank_details: Annotated[
        dict[Annotated[str, Meta(max_length=32)], Annotated[str, Meta(max_length=64)]],
        Meta(max_length=4),
    ]


class TransferCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    quote_id: PublicId
    recipient_id: PublicId
    reference: Reference


class TransferCancel(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Cancelling takes no fields; an empty object (or no body) is accepted."""


class TenantCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: TenantName
    tier: Tier = "starter"
    compliance_region: Region = "EU"


class ApiKeyCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    role: Role = "operator"


class PoliciesUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pricing_policy: PolicyName
    limit_policy: PolicyName


class LimitPolicyCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: PolicyName
    requests_per_minute: Annotated[int, Meta(ge=1, le=ratelimit.requests_per_minute_max)]
    daily_limit_usd_minor: Annotated[int, Meta(ge=0, le=10**15)]


class PricingPolicyCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: PolicyName
    margin_bps: Annotated[int, Meta(ge=0, le=10_000)]
    fee_bps: Annotated[int, Meta(ge=0, le=10_000)] = 0
    fee_fixed_usd_minor: Annotated[int, Meta(ge=0, le=10**9)] = 0


class TenantStatusUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    status: Literal["active", "frozen"]


class LiquidityFund(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    currency: CurrencyCode
    amount: AmountMinor
    reference: Reference | None = None


class Balance(msgspec.Struct, frozen=True, kw_only=True):
    currency: str
    available: int
    pending: int
    posted: int


class BalanceList(msgspec.Struct, frozen=True, kw_only=True):
    data: list[Balance]


class Deposit(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: str = "deposit"
    currency: str
    amount: int
    reference: str | None
    status: str
    created_at: datetime.datetime


class Hold(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: str = "hold"
    currency: str
    amount: int
    captured_amount: int
    status: Literal["pending", "captured", "voided", "expired"]
    timeout_seconds: int
    expires_at: datetime.datetime | None
    reference: str | None
    created_at: datetime.datetime


class StatementEntry(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object_id: str
    type: str
    direction: Literal["credit", "debit"]
    amount: int
    currency: str
    status: str
    balance_posted: int
    balance_pending: int
    created_at: datetime.datetime


class StatementPage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[StatementEntry]
    next_cursor: str | None


class Money(msgspec.Struct, frozen=True, kw_only=True):
    amount: int
    currency: str


class Quote(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: str = "quote"
    source_currency: str
    target_currency: str
    source_amount: int
    target_amount: int
    rate: str
    mid_rate: str
    margin_bps: int
    fee: Money
    status: Literal["active", "used", "expired"]
    rate_observed_at: datetime.datetime
    created_at: datetime.datetime
    expires_at: datetime.datetime


class Recipient(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: str = "recipient"
    name: str
    country: str
    currency: str
    bank_details: dict[str, str]
    status: str
    created_at: datetime.datetime


TransferStatus = Literal[
    "processing",
    "submitted",
    "pending_rail",
    "completed",
    "in_review",
    "blocked",
    "rail_rejected",
    "refunded",
    "cancelled",
]
transfer_statuses: tuple[str, ...] = TransferStatus.__args__  # type: ignore[attr-defined]


class Transfer(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: str = "transfer"
    status: TransferStatus
    quote_id: str
    recipient_id: str
    reference: str
    source: Money
    fee: Money
    target: Money
    rate: str
    rail: str
    failure_code: str | None
    created_at: datetime.datetime
    updated_at: datetime.datetime
    batch_id: str | None = None


class TransferPage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[Transfer]
    next_cursor: str | None


class TransferMessage(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    direction: str
    attempt: int
    xml: str
    created_at: datetime.datetime


class TransferMessageList(msgspec.Struct, frozen=True, kw_only=True):
    data: list[TransferMessage]


class Tenant(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    name: str
    tier: str
    pricing_policy: str
    limit_policy: str
    compliance_region: str
    status: str
    requests_per_minute: int
    daily_limit_usd_minor: int
    margin_bps: int
    created_at: datetime.datetime


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    tenant_id: int
    role: str
    prefix: str
    created_at: datetime.datetime
    revoked_at: datetime.datetime | None
    secret: str | None = None


class TenantPage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[Tenant]
    next_cursor: str | None


class ApiKeyPage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[ApiKey]
    next_cursor: str | None


class TenantCreated(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: int
    api_key: str
    tenant: Tenant


class Policy(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    name: str
    kind: Literal["limit", "pricing"]


class Funding(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    currency: str
    amount: int
    created_at: datetime.datetime


class Health(msgspec.Struct, frozen=True, kw_only=True):
    status: str


class Readiness(msgspec.Struct, frozen=True, kw_only=True):
    status: str
    checks: dict[str, str]
