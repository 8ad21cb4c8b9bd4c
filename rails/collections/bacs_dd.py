"""Bacs Direct Debit, United Kingdom: Direct Debit Instructions on sterling accounts, collected
through Bacs.

A mandate needs `{sort_code, account_number}`, checked with the VocaLink modulus rules the
payouts already use (`rails.bank_details.validate_uk`). Reason codes (ARUDD, AUDDIS, ADDACS)
are in `reason_codes.bacs_reasons`.

A collection run's message is one JSON record per collection, the fields of a Bacs Standard
18 debit record by name (not its fixed-width layout, which the sponsoring bank's submission
software writes): the payer's sort code and account number, the transaction code (`01` for
the first collection under an instruction, `17` for the next ones), the amount in pence, the
payer's reference (the mandate's, at most 18 characters as Bacs allows) and name (at most 18,
in Bacs's upper-case character set), and the processing date.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping, Sequence

import msgspec
from anyascii import anyascii

from rails import bank_details
from rails.collections import reason_codes
from rails.collections.provider import CollectionRequest, ProviderName

currency = "GBP"
# Bacs carries at most £20,000,000 in one payment instruction (in pence).
amount_max_minor = 2_000_000_000
bacs_field_length_max = 18
transaction_codes = {"first": "01", "recurring": "17"}
_outside_bacs = re.compile(r"[^A-Z0-9.&/\- ]")


class BacsDebitRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One collection as the Bacs debit record carries it."""

    sort_code: str
    account_number: str
    transaction_code: str
    amount_pence: int
    reference: str
    payer_name: str
    processing_date: datetime.date


def bacs_text(text: str) -> str:
    """`text` in Bacs's character set (upper case, digits, `. & / -` and space), 18 at most."""
    cleaned = _outside_bacs.sub(" ", anyascii(text).upper())
    return " ".join(cleaned.split())[:bacs_field_length_max].strip()


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
        """The run's debit records, one JSON object per line (None for an empty run)."""
        if not requests:
            return None
        records = [
            BacsDebitRecord(
                sort_code=r.bank_details["sort_code"],
                account_number=r.bank_details["account_number"],
                transaction_code=transaction_codes[r.sequence_type],
                amount_pence=r.amount_minor,
                reference=bacs_text(r.mandate_provider_reference[-bacs_field_length_max:]),
                payer_name=bacs_text(r.account_holder_name),
                processing_date=r.collection_date,
            )
            for r in requests
        ]
        return b"\n".join(msgspec.json.encode(record) for record in records)
