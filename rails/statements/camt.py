"""Reading camt.053 (bank-to-customer statement) and camt.054 (debit/credit notification)
files: what a bank says happened on an account, which Kovra believes only once the file has
passed every check here.

A file from a bank is outside input, so it is read defensively, in this order:

1. a hardened libxml2 parser: no entity substitution, no network, no DTD loading, no huge
   trees; a file with a document type declaration (where entities and external references
   would live) is refused outright, whatever it declares;
2. its namespace names the message and version; only those whose official XSD ships in
   `rails/schemas/` are read (`supported_messages`), and the file must be valid against it;
3. then its values are taken with namespace-qualified paths (never regular expressions):
   amounts become integers in the currency's minor units (an amount with more decimals than
   the currency has is refused, never rounded), and every amount of a report must be in the
   account's currency.

Every refusal is `InvalidStatement`, naming what is wrong (for a schema error, the line and
libxml2's message). Entries the bank reports as not booked (`PDNG`, `INFO`) are counted and
otherwise left: only a booked entry says money arrived or left.

Each booked entry gets the key it is recorded once by (`Entry.key`): the bank's own
reference for it, `AcctSvcrRef`, else the entry reference `NtryRef`, else a digest of what
identifies it (`entry_digest`). A notification and the statement that later repeats the
same entry carry the same key.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from importlib import resources
from typing import Literal

import msgspec
from lxml import etree

from ledger.currencies import CurrencyRegistry
from ledger.errors import DomainError, LedgerError

# The largest file read (the admin route and the CLI both hold to it), and bounds on what a
# file may carry, so one file cannot hold the service for long.
file_bytes_max = 10 * 1024 * 1024
reports_per_file_max = 100
entries_per_file_max = 50_000
# The namespace of each message read, by its message identifier; the XSD is the file of the
# same name in `rails/schemas/`.
supported_messages: dict[str, Literal["camt.053", "camt.054"]] = {
    "camt.053.001.02": "camt.053",
    "camt.053.001.08": "camt.053",
    "camt.054.001.02": "camt.054",
    "camt.054.001.08": "camt.054",
}
namespace_prefix = "urn:iso:std:iso:20022:tech:xsd:"
# The top element under `Document`, and the element of each report, by kind.
_top_elements = {
    "camt.053": ("BkToCstmrStmt", "Stmt"),
    "camt.054": ("BkToCstmrDbtCdtNtfctn", "Ntfctn"),
}
_opening_balance_codes = ("OPBD", "PRCD")
_closing_balance_codes = ("CLBD",)
# An end-to-end id the payer's bank fills in when the payer gave none.
_no_end_to_end_id = "NOTPROVIDED"

_parser = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
)

Direction = Literal["credit", "debit"]
KeySource = Literal["AcctSvcrRef", "NtryRef", "digest"]


class InvalidStatement(DomainError):
    """A statement file was refused: not well-formed, not a supported camt message, invalid
    against its schema, or carrying values Kovra cannot take exactly. Nothing was stored."""

    code = "invalid_statement"


class Balance(msgspec.Struct, frozen=True, kw_only=True):
    """A balance of the report: signed minor units (a debit balance is negative)."""

    code: str
    amount_minor: int
    date: datetime.date


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """One booked entry, as the bank reports it; `position` is its place in the report."""

    position: int
    key: str
    key_source: KeySource
    amount_minor: int
    direction: Direction
    booking_date: datetime.date | None
    value_date: datetime.date | None
    unstructured: tuple[str, ...]
    creditor_references: tuple[str, ...]
    end_to_end_ids: tuple[str, ...]


class Report(msgspec.Struct, frozen=True, kw_only=True):
    """One statement (`Stmt`) or notification (`Ntfctn`) of a file: one account's."""

    report_id: str
    account: str
    currency: str
    opening: Balance | None
    closing: Balance | None
    entries: tuple[Entry, ...]
    not_booked_count: int


class StatementFile(msgspec.Struct, frozen=True, kw_only=True):
    kind: Literal["camt.053", "camt.054"]
    message_type: str
    message_id: str
    created_at: datetime.datetime
    sha256: bytes
    reports: tuple[Report, ...]


@functools.cache
def _schema(message_type: str) -> etree.XMLSchema:
    """The official XSD of `message_type`, compiled once."""
    path = resources.files("rails").joinpath("schemas", f"{message_type}.xsd")
    return etree.XMLSchema(etree.parse(str(path), parser=_parser))


def read_statement(raw: bytes, *, currencies: CurrencyRegistry) -> StatementFile:
    """The file's reports, or `InvalidStatement` naming what is wrong."""
    if len(raw) > file_bytes_max:
        raise InvalidStatement(f"the file is larger than {file_bytes_max} bytes")
    root = _parse(raw)
    message_type = _message_type(root)
    _validate(root, message_type)
    kind = supported_messages[message_type]
    reader = _Reader(f"{namespace_prefix}{message_type}", currencies)
    top_name, report_name = _top_elements[kind]
    top = reader.one(root, top_name)
    reports = reader.all(top, report_name)
    if len(reports) > reports_per_file_max:
        raise InvalidStatement(f"the file holds more than {reports_per_file_max} reports")
    read = tuple(reader.report(report) for report in reports)
    if sum(len(report.entries) for report in read) > entries_per_file_max:
        raise InvalidStatement(f"the file holds more than {entries_per_file_max} entries")
    ids = [report.report_id for report in read]
    if len(set(ids)) != len(ids):
        raise InvalidStatement("two reports of the file have the same Id")
    return StatementFile(
        kind=kind,
        message_type=message_type,
        message_id=reader.text(top, "GrpHdr/MsgId"),
        created_at=_instant(reader.text(top, "GrpHdr/CreDtTm")),
        sha256=hashlib.sha256(raw).digest(),
        reports=read,
    )


def _parse(raw: bytes) -> etree._Element:
    try:
        root = etree.fromstring(raw, parser=_parser)
    except etree.XMLSyntaxError as error:
        raise InvalidStatement(f"the file is not well-formed XML: {error}") from None
    if root is None:
        raise InvalidStatement("the file is empty")
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.system_url:
        # Entities (billion laughs) and external references (XXE) live in a DTD; a camt
        # message never needs one.
        raise InvalidStatement("the file declares a document type (DOCTYPE), which is refused")
    return root


def _message_type(root: etree._Element) -> str:
    qualified = etree.QName(root)
    namespace = qualified.namespace or ""
    message_type = namespace.removeprefix(namespace_prefix)
    if qualified.localname != "Document" or not namespace.startswith(namespace_prefix):
        raise InvalidStatement("the file is not an ISO 20022 message (no camt Document)")
    if message_type not in supported_messages:
        supported = ", ".join(sorted(supported_messages))
        raise InvalidStatement(f"{message_type} is not supported; Kovra reads {supported}")
    return message_type


def _validate(root: etree._Element, message_type: str) -> None:
    try:
        _schema(message_type).assertValid(root)
    except etree.DocumentInvalid as error:
        # libxml2's message names the element and the line.
        raise InvalidStatement(f"the file is not a valid {message_type}: {error}") from None


def _instant(text: str) -> datetime.datetime:
    """An ISO date-time; one without an offset is taken as UTC."""
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidStatement(f"{text!r} is not a date-time Kovra can read") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def minor_units_of(text: str, *, currency: str, minor_units: int) -> int:
    """The decimal amount `text` as an integer of minor units; refused when it has more
    decimals than the currency (never rounded)."""
    try:
        scaled = Decimal(text).scaleb(minor_units)
    except InvalidOperation:
        raise InvalidStatement(f"{text!r} is not an amount") from None
    if scaled != scaled.to_integral_value():
        raise InvalidStatement(
            f"the amount {text} {currency} has more decimals than {currency}'s {minor_units}"
        )
    return int(scaled)


def entry_digest(
    *,
    direction: Direction,
    amount_minor: int,
    currency: str,
    dates: tuple[datetime.date | None, datetime.date | None],
    identifiers: Sequence[str],
) -> str:
    """The key of an entry that has neither `AcctSvcrRef` nor `NtryRef`: SHA-256 (hex) of
    its direction, amount, currency, booking and value dates, end-to-end ids, creditor
    references and remittance lines, joined with U+001F (which XML text cannot hold)."""
    parts = [direction, str(amount_minor), currency, *(str(d or "") for d in dates)]
    joined = "\x1f".join([*parts, *identifiers])
    return hashlib.sha256(joined.encode()).hexdigest()


class _Reader:
    """Namespace-qualified reads of one message's elements."""

    def __init__(self, namespace: str, currencies: CurrencyRegistry) -> None:
        self._namespaces = {"c": namespace}
        self._currencies = currencies

    def _path(self, path: str) -> str:
        return "/".join(f"c:{step}" for step in path.split("/"))

    def all(self, element: etree._Element, path: str) -> list[etree._Element]:
        return list(element.iterfind(self._path(path), self._namespaces))

    def one(self, element: etree._Element, path: str) -> etree._Element:
        found = element.find(self._path(path), self._namespaces)
        if found is None:
            raise InvalidStatement(f"the file has no {path}")
        return found

    def optional(self, element: etree._Element, path: str) -> str | None:
        found = element.find(self._path(path), self._namespaces)
        return None if found is None or found.text is None else found.text.strip()

    def text(self, element: etree._Element, path: str) -> str:
        value = self.optional(element, path)
        if not value:
            raise InvalidStatement(f"the file has no {path}")
        return value

    def texts(self, element: etree._Element, path: str) -> tuple[str, ...]:
        return tuple(
            found.text.strip()
            for found in self.all(element, path)
            if found.text is not None and found.text.strip()
        )

    def date(self, element: etree._Element, path: str) -> datetime.date | None:
        day = self.optional(element, f"{path}/Dt")
        if day is not None:
            # An ISO date may carry an offset (`2024-05-02+02:00`); the day is what counts.
            return datetime.date.fromisoformat(day[:10])
        moment = self.optional(element, f"{path}/DtTm")
        return None if moment is None else _instant(moment).date()

    def amount(self, element: etree._Element, currency: str) -> int:
        """The element's `Amt` in minor units, which must be in `currency`."""
        amount = self.one(element, "Amt")
        written = amount.get("Ccy", "")
        if written != currency:
            raise InvalidStatement(f"an amount is in {written}, the account is in {currency}")
        try:
            minor_units = self._currencies.get(currency).minor_units
        except LedgerError as error:
            raise InvalidStatement(f"the account's currency: {error.detail}") from None
        return minor_units_of(amount.text or "", currency=currency, minor_units=minor_units)

    def report(self, report: etree._Element) -> Report:
        account_element = self.one(report, "Acct")
        account = self.optional(account_element, "Id/IBAN") or self.text(
            account_element, "Id/Othr/Id"
        )
        currency = self._currency(report, account_element)
        balances = [self._balance(balance, currency) for balance in self.all(report, "Bal")]
        entries: list[Entry] = []
        not_booked = 0
        for position, element in enumerate(self.all(report, "Ntry")):
            status = self.optional(element, "Sts/Cd") or self.optional(element, "Sts")
            if status != "BOOK":
                not_booked += 1
                continue
            entries.append(self._entry(element, position=position, currency=currency))
        return Report(
            report_id=self.text(report, "Id"),
            account="".join(account.split()).upper(),
            currency=currency,
            opening=next((b for b in balances if b.code in _opening_balance_codes), None),
            closing=next((b for b in balances if b.code in _closing_balance_codes), None),
            entries=tuple(entries),
            not_booked_count=not_booked,
        )

    def _currency(self, report: etree._Element, account: etree._Element) -> str:
        """The account's currency as the report states it, else as its first amount does."""
        stated = self.optional(account, "Ccy")
        if stated:
            return stated
        for path in ("Bal/Amt", "Ntry/Amt"):
            found = report.find(self._path(path), self._namespaces)
            if found is not None and found.get("Ccy"):
                return str(found.get("Ccy"))
        raise InvalidStatement("a report names no currency (no Acct/Ccy and no amounts)")

    def _balance(self, balance: etree._Element, currency: str) -> Balance:
        amount = self.amount(balance, currency)
        signed = -amount if self.text(balance, "CdtDbtInd") == "DBIT" else amount
        day = self.date(balance, "Dt")
        if day is None:
            raise InvalidStatement("a balance has no date")
        return Balance(
            code=self.optional(balance, "Tp/CdOrPrtry/Cd") or "", amount_minor=signed, date=day
        )

    def _entry(self, element: etree._Element, *, position: int, currency: str) -> Entry:
        amount = self.amount(element, currency)
        if amount == 0:
            raise InvalidStatement(f"entry {position + 1} has an amount of 0")
        direction: Direction = "debit" if self.text(element, "CdtDbtInd") == "DBIT" else "credit"
        dates = (self.date(element, "BookgDt"), self.date(element, "ValDt"))
        details = "NtryDtls/TxDtls"
        end_to_end_ids = tuple(
            e2e
            for e2e in self.texts(element, f"{details}/Refs/EndToEndId")
            if e2e != _no_end_to_end_id
        )
        unstructured = self.texts(element, f"{details}/RmtInf/Ustrd")
        creditor_references = self.texts(element, f"{details}/RmtInf/Strd/CdtrRefInf/Ref")
        key, source = self._key(element)
        if key is None:
            identifiers = [*end_to_end_ids, *creditor_references, *unstructured]
            key = entry_digest(
                direction=direction, amount_minor=amount, currency=currency, dates=dates,
                identifiers=identifiers,
            )  # fmt: skip
        return Entry(
            position=position,
            key=key,
            key_source=source,
            amount_minor=amount,
            direction=direction,
            booking_date=dates[0],
            value_date=dates[1],
            unstructured=unstructured,
            creditor_references=creditor_references,
            end_to_end_ids=end_to_end_ids,
        )

    def _key(self, element: etree._Element) -> tuple[str | None, KeySource]:
        servicer_reference = self.optional(element, "AcctSvcrRef")
        if servicer_reference:
            return servicer_reference, "AcctSvcrRef"
        entry_reference = self.optional(element, "NtryRef")
        if entry_reference:
            return entry_reference, "NtryRef"
        return None, "digest"
