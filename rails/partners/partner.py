"""The one interface every partner institution sits behind (SPEC §11).

Money a customer's rules put into a bucket is paid on to the institution the bucket names
(a savings bank, a landlord's agent, a tax office, a pension fund): a partner. The
orchestration never talks to a partner directly and holds no partner-specific logic: it
hands one `PartnerOrder` to a `Partner` and gets a `PartnerReceipt` back, or one of two
errors that say whether asking again can help.

An order's id is Kovra's idempotency key at the partner: sending the same order again (a
retry after a timeout, a worker resumed after a crash) must answer the first receipt and
never pay twice. Adapters: `sandbox` (answers by the partner's reference, like the rails)
and `http` (POSTs the order, signed, to the partner's URL).
"""

from __future__ import annotations

import datetime
from typing import Literal, Protocol

import msgspec

from ledger.invariants import ensure

object_id_bits = 128
partner_reference_length_max = 64
rejection_code_length_max = 32

PartnerKind = Literal["savings", "rent", "loan", "tax", "investment", "subscription", "pension"]
partner_kinds: tuple[str, ...] = PartnerKind.__args__  # type: ignore[attr-defined]
PartnerAdapter = Literal["sandbox", "http"]
partner_adapters: tuple[str, ...] = PartnerAdapter.__args__  # type: ignore[attr-defined]


def _ensure_object_id(value: int, name: str) -> None:
    ensure(0 < value < 1 << object_id_bits, f"{name} is a positive {object_id_bits}-bit id")


class PartnerOrder(msgspec.Struct, frozen=True, kw_only=True):
    """Pay one amount from a customer's bucket to the partner.

    Ids are Kovra's 128-bit ids; the adapter shows them to the partner in their public form.
    Nothing personal rides in an order: the partner knows the customer by `account_reference`
    (the customer's account or contract number at the partner, as the bucket records it)."""

    order_id: int  # Also the partner's idempotency key.
    tenant_id: int
    partner_id: int
    orchestration_id: int
    bucket_id: int
    customer_id: int
    currency: str
    amount_minor: int
    account_reference: str | None = None

    def __post_init__(self) -> None:
        for name in ("order_id", "partner_id", "orchestration_id", "bucket_id", "customer_id"):
            _ensure_object_id(getattr(self, name), name)
        ensure(self.tenant_id > 0, "an order belongs to a tenant")
        ensure(self.amount_minor > 0, "an order pays a positive amount")


class PartnerReceipt(msgspec.Struct, frozen=True, kw_only=True):
    """The partner took the order: its own id of the payment, and when it accepted it."""

    order_id: int
    partner_reference: str
    accepted_at: datetime.datetime

    def __post_init__(self) -> None:
        ensure(
            0 < len(self.partner_reference) <= partner_reference_length_max,
            "a partner reference is 1 to 64 characters",
        )


class PartnerRejected(Exception):
    """The partner refused the order for good (an account closed, a contract ended): asking
    again will not help. `code` is the partner's reason, at most 32 characters."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code[:rejection_code_length_max]
        self.description = description


class PartnerUnavailable(Exception):
    """No answer: a timeout, a server error, the circuit open. The order may or may not have
    arrived; sending it again is safe (the partner keys on the order id)."""


class Partner(Protocol):
    """One partner institution, reached through its adapter."""

    @property
    def adapter(self) -> PartnerAdapter: ...

    async def send(self, order: PartnerOrder) -> PartnerReceipt:
        """The partner's receipt for the order (the first one, when it was sent before);
        `PartnerRejected` or `PartnerUnavailable` otherwise."""
        ...
