"""PayWithAccount (OnePipe), Nigeria: mandates on naira accounts, debited by the customer's
bank under the mandate.

A mandate needs `{bank_code, account_number}`: an institution from `nuban.nigerian_institutions`
and a ten-digit NUBAN whose check digit holds for that institution. Reason codes are in
`reason_codes.paywithaccount_reasons`.

PayWithAccount takes one API request per operation, shaped like OnePipe's transact API: a
`request_ref` (unique per request), a `request_type`, an `auth` block naming the provider,
and a `transaction` with its reference, the parent mandate's reference, the amount in kobo
and the customer. `transact_request` builds them for the four operations (`create_mandate`,
`collect`, `query`, `cancel_mandate`); a collection run's message is its `collect` requests,
one JSON object per line, so operators see what was asked. Account numbers are not in the
messages: a debit names the mandate, which the provider holds them under.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Literal

import msgspec

from rails.bank_details import InvalidBankDetails
from rails.collections import nuban, reason_codes
from rails.collections.provider import CollectionRequest, ProviderName
from rails.collections.scheme import only_fields, required_field

currency = "NGN"
# Kovra's ceiling for one debit: ₦10,000,000 in kobo. The banks behind PayWithAccount set
# their own daily limits per account, lower for most retail accounts, and refuse above them
# with code 61.
amount_max_minor = 1_000_000_000
bank_detail_fields = ("bank_code", "account_number")
auth_provider = "PaywithAccount"
RequestType = Literal["create_mandate", "collect", "query", "cancel_mandate"]


class TransactAuth(msgspec.Struct, frozen=True, kw_only=True):
    type: str | None
    auth_provider: str


class TransactCustomer(msgspec.Struct, frozen=True, kw_only=True):
    customer_ref: str
    name: str


class TransactTransaction(msgspec.Struct, frozen=True, kw_only=True):
    transaction_ref: str
    transaction_ref_parent: str | None
    transaction_desc: str
    amount: int  # Kobo.
    customer: TransactCustomer


class TransactRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One PayWithAccount operation, as its API takes it."""

    request_ref: str
    request_type: RequestType
    auth: TransactAuth
    transaction: TransactTransaction


def transact_request(
    request_type: RequestType,
    *,
    request_ref: str,
    transaction_ref: str,
    parent_ref: str | None,
    amount_kobo: int,
    description: str,
    customer_ref: str,
    customer_name: str,
) -> TransactRequest:
    return TransactRequest(
        request_ref=request_ref,
        request_type=request_type,
        auth=TransactAuth(
            type="bank.account" if request_type == "create_mandate" else None,
            auth_provider=auth_provider,
        ),
        transaction=TransactTransaction(
            transaction_ref=transaction_ref,
            transaction_ref_parent=parent_ref,
            transaction_desc=description,
            amount=amount_kobo,
            customer=TransactCustomer(customer_ref=customer_ref, name=customer_name),
        ),
    )


class PayWithAccount:
    """The PayWithAccount scheme: NGN, NUBAN accounts, NIBSS reason codes."""

    name = ProviderName.PAYWITHACCOUNT
    currency = currency
    amount_max_minor = amount_max_minor
    mandate_cancelled_code = reason_codes.paywithaccount_mandate_cancelled
    no_mandate_code = reason_codes.paywithaccount_mandate_cancelled
    unspecified_code = reason_codes.paywithaccount_unspecified
    invalid_amount_code = "13"
    invalid_currency_code = "AM03"

    def validate_bank_details(self, bank_details: Mapping[str, str]) -> dict[str, str]:
        """`{bank_code, account_number}`: a known institution and a NUBAN valid there."""
        only_fields(bank_details, bank_detail_fields, scheme="PayWithAccount bank details")
        bank_code = required_field(bank_details, "bank_code")
        account_number = required_field(bank_details, "account_number")
        if bank_code not in nuban.nigerian_institutions:
            raise InvalidBankDetails(
                "bank_details.bank_code",
                f"{bank_code!r} is not the CBN code of an institution Kovra collects from",
            )
        if len(account_number) != nuban.account_digits or not account_number.isdigit():
            raise InvalidBankDetails(
                "bank_details.account_number", "a Nigerian account number (NUBAN) is 10 digits"
            )
        if not nuban.is_valid_nuban(institution_code=bank_code, account_number=account_number):
            raise InvalidBankDetails(
                "bank_details.account_number",
                "the account number's check digit does not match this bank code",
            )
        return {"bank_code": bank_code, "account_number": account_number}

    def reason_description(self, reason_code: str) -> str:
        return reason_codes.describe(reason_codes.paywithaccount_reasons, reason_code)

    def is_mandate_fatal(self, reason_code: str) -> bool:
        return reason_codes.is_fatal(reason_codes.paywithaccount_reasons, reason_code)

    def knows_reason(self, reason_code: str) -> bool:
        return reason_code in reason_codes.paywithaccount_reasons

    def collection_message(
        self, requests: Sequence[CollectionRequest], *, created_at: datetime.datetime
    ) -> bytes | None:
        """The run's `collect` requests, one JSON object per line (None for an empty run)."""
        if not requests:
            return None
        collects = [
            transact_request(
                "collect",
                request_ref=r.end_to_end_id,
                transaction_ref=f"{r.collection_id:032x}",
                parent_ref=r.mandate_provider_reference,
                amount_kobo=r.amount_minor,
                description=r.reference,
                customer_ref=r.mandate_provider_reference,
                customer_name=r.account_holder_name,
            )
            for r in requests
        ]
        return b"\n".join(msgspec.json.encode(request) for request in collects)
