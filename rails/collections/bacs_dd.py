"""Bacs Direct Debit, United Kingdom: Direct Debit Instructions on sterling accounts, collected
through Bacs.

A mandate needs `{sort_code, account_number}`, checked with the VocaLink modulus rules the
payouts already use (`rails.bank_details.validate_uk`). Reason codes (ARUDD, AUDDIS, ADDACS)
are in `reason_codes.bacs_reasons`.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence

from rails import bank_details
from rails.collections import reason_codes
from rails.collections.provider import CollectionRequest, ProviderName

currency = "GBP"
# Bacs carries at most £20,000,000 in one payment instruction (in pence).
amount_max_minor = 2_000_000_000


class BacsDirectDebit:
    """The Bacs Direct Debit scheme: GBP, sort code and account number, Bacs reason codes."""

    name = ProviderName.BACS_DD
    currency = currency
    amount_max_minor = amount_max_minor
    mandate_cancelled_code = reason_codes.bacs_mandate_cancelled
    no_mandate_code = "6"
    unspecified_code = reason_codes.bacs_unspecified
    invalid_amount_code = "AM02"
    invalid_currency_code = "AM03"

    def validate_bank_details(self, bank_details_given: Mapping[str, str]) -> dict[str, str]:
        """`{sort_code, account_number}`, the sort code as six digits, modulus-checked."""
        details = bank_details.validate_uk(bank_details_given)
        return {"sort_code": details.sort_code, "account_number": details.account_number}

    def reason_description(self, reason_code: str) -> str:
        return reason_codes.describe(reason_codes.bacs_reasons, reason_code)

    def is_mandate_fatal(self, reason_code: str) -> bool:
        return reason_codes.is_fatal(reason_codes.bacs_reasons, reason_code)

    def knows_reason(self, reason_code: str) -> bool:
        return reason_code in reason_codes.bacs_reasons

    def collection_message(
        self, requests: Sequence[CollectionRequest], *, created_at: datetime.datetime
    ) -> bytes | None:
        return None
