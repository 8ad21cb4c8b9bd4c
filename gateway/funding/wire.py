"""The JSON shapes of funding instructions, bank statements and their entries, and the
`funding.credited` event."""

from __future__ import annotations

import datetime
from typing import Literal

import msgspec

from gateway.http.wire import IssuedCurrencyCode, Timestamp

EntryStatus = Literal[
    "pending_credit", "pending_suspense", "credited", "suspense", "released", "collection", "debit"
]


class FundingInstructions(msgspec.Struct, frozen=True, kw_only=True):
    object: str = "funding_instructions"
    currency: IssuedCurrencyCode
    bank_details: dict[str, str]
    account_holder_name: str
    # The tenant's ISO 11649 creditor reference, compact, and as a payer reads it.
    reference: str
    reference_printed: str


class StatementBalance(msgspec.Struct, frozen=True, kw_only=True):
    """Signed minor units: a debit balance is negative."""

    amount: int
    date: datetime.date


class BankStatement(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: str = "bank_statement"
    kind: Literal["camt.053", "camt.054"]
    message_type: str
    message_id: str
    report_id: str
    account: str
    currency: IssuedCurrencyCode
    opening_balance: StatementBalance | None
    closing_balance: StatementBalance | None
    entry_count: int
    not_booked_count: int
    status: Literal["processing", "processed"]
    ingested_by: str
    file_sha256: str
    bank_created_at: Timestamp
    created_at: Timestamp
    processed_at: Timestamp | None


class BankEntry(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: str = "bank_entry"
    # The statement that brought the entry first (a notification, then its statement).
    statement_id: str
    entry_key: str
    key_source: Literal["AcctSvcrRef", "NtryRef", "digest"]
    direction: Literal["credit", "debit"]
    amount: int
    currency: IssuedCurrencyCode
    booking_date: datetime.date | None
    value_date: datetime.date | None
    remittance: str | None
    creditor_reference: str | None
    end_to_end_id: str | None
    status: EntryStatus
    suspense_reason: str | None
    tenant_id: int | None
    created_at: Timestamp
    settled_at: Timestamp | None


class StatementLine(msgspec.Struct, frozen=True, kw_only=True):
    position: int
    entry: BankEntry


class BankStatementDetail(msgspec.Struct, frozen=True, kw_only=True):
    statement: BankStatement
    entries: list[StatementLine]
    next_cursor: str | None


class BankStatementPage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[BankStatement]
    next_cursor: str | None


class Ingestion(msgspec.Struct, frozen=True, kw_only=True):
    """What one file did: its statements (recorded now or before), and its booked entries
    by what became of them; `repeated` counts those an earlier file had brought."""

    object: str = "statement_ingestion"
    statements: list[BankStatement]
    entries: int
    repeated: int
    credited: int
    suspense: int
    collection: int
    debit: int


class FundingCredit(msgspec.Struct, frozen=True, kw_only=True):
    """The payload of `funding.credited`: money from the bank reached the wallet."""

    id: str
    object: str = "funding_credit"
    currency: IssuedCurrencyCode
    amount: int
    source: Literal["bank_statement", "suspense_release"]
    remittance: str | None
    end_to_end_id: str | None
    booking_date: datetime.date | None
    value_date: datetime.date | None
    created_at: Timestamp
