"""PayWithAccount (OnePipe), Nigeria: mandates on naira accounts, debited by the customer's
bank under the mandate.

A mandate needs `{bank_code, account_number}`: an institution from `nuban.nigerian_institutions`
and a ten-digit NUBAN whose check digit holds for that institution. Reason codes are in
`reason_codes.paywithaccount_reasons`.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence

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
        """PayWithAccount takes one API request per debit; a run sends no file."""
        return None
