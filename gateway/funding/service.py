"""Funding: instructions for tenants, and bank statements in (SPEC §10).

Ingesting a file (the admin route and `kovra statements ingest` both call `ingest`):

1. read and check it (`rails.statements.camt`), and check that each report is for the
   settlement account of its currency (`gateway.funding.accounts`); audit the ingestion;
2. decide each booked entry: a debit is recorded for reconciliation; a credit whose
   end-to-end id is a known collection's is recorded as `collection` (its provider's
   notification credited it); a credit whose remittance names exactly one existing tenant by
   its funding reference is `pending_credit` for that tenant; any other credit is
   `pending_suspense`, with the reason;
3. in one transaction: record the statements, the entries not recorded before (an entry a
   notification brought keeps what was decided for it then) and each statement's list;
4. move the pending entries of this file in the ledger (`ledger.funding`, ids derived from
   the entries, so a repeat moves nothing twice);
5. in one transaction: settle those entries, write `funding.credited` to each credited
   tenant's outbox, record an `unmatched_statement_entry` exception for each suspense one,
   and mark the statements processed.

A crash anywhere leaves entries pending and the statement `processing`; ingesting the same
file again completes it (steps 3 to 5 find the same rows and the same transfers).
"""

from __future__ import annotations

import datetime
import hashlib
import uuid
from collections.abc import Mapping, Sequence

import asyncpg
import msgspec

from compliance.audit.chain import record_admin_action
from gateway.funding import records, wire
from gateway.funding.accounts import SettlementAccount
from gateway.funding.errors import (
    NoFundingInstructions,
    ReleaseNotApplicable,
    StatementConflict,
    StatementUnknown,
    UnknownSettlementAccount,
    UnknownTenant,
)
from gateway.funding.references import funding_reference, printed, tenant_of, tenants_in
from gateway.http.ids import as_uuid, encode_id
from gateway.http.paging import Page, PageRequest, Position
from gateway.operations import records as exceptions
from gateway.operations.errors import ExceptionAlreadyResolved, ExceptionUnknown
from gateway.webhooks.records.events import event_insert
from ledger.currencies import CurrencyRegistry
from ledger.funding import BankFunding, EntryCredit
from ledger.transfers import Leg, transfer_id
from rails.statements.camt import Entry, Report, StatementFile, read_statement

unmatched_entry_kind = "unmatched_statement_entry"
remittance_length_max = 2_000
reference_length_max = 35


class _Decision(msgspec.Struct, frozen=True, kw_only=True):
    status: str
    tenant_id: int | None = None
    reason: str | None = None


def entry_id_of(*, account: str, entry_key: str) -> uuid.UUID:
    """A bank entry's id: the same whichever file (notification or statement) brings it."""
    digest = hashlib.blake2b(
        f"{account}\x1f{entry_key}".encode(), digest_size=16, person=b"kovra.bankentry"
    ).digest()
    return uuid.UUID(bytes=digest) if any(digest) else uuid.UUID(int=1)


class Funding:
    """Funding instructions and bank-statement ingestion over the settlement accounts."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        bank: BankFunding,
        currencies: CurrencyRegistry,
        accounts: Mapping[str, SettlementAccount],
    ) -> None:
        self._pool = pool
        self._bank = bank
        self._currencies = currencies
        self._accounts = accounts

    def instructions(self, tenant_id: int, currency: str) -> wire.FundingInstructions:
        code = self._currencies.get(currency).code
        account = self._accounts.get(code)
        if account is None:
            raise NoFundingInstructions(
                f"there is no settlement account in {code}: wallets are not funded in it",
                field="currency",
            )
        reference = funding_reference(tenant_id)
        return wire.FundingInstructions(
            currency=code,
            bank_details=dict(account.bank_details),
            account_holder_name=account.holder_name,
            reference=reference,
            reference_printed=printed(reference),
        )

    async def ingest(self, raw: bytes, *, actor: str) -> wire.Ingestion:
        """Record a camt.053/054 file once and settle its booked entries (module doc)."""
        parsed = read_statement(raw, currencies=self._currencies)
        self._check_accounts(parsed)
        await record_admin_action(
            self._pool,
            actor=actor,
            action="statement.ingest",
            target=f"file:{parsed.sha256.hex()}",
            details={
                "message_type": parsed.message_type,
                "message_id": parsed.message_id,
                "reports": [report.report_id for report in parsed.reports],
            },
        )
        decisions = await self._decide(parsed)
        statements, entry_ids, repeated = await self._record(parsed, decisions, actor=actor)
        await self._settle(entry_ids)
        await records.mark_processed(self._pool, [s.id for s in statements])
        counts = await records.status_counts(self._pool, entry_ids)
        stored = [await records.get_statement(self._pool, s.id) for s in statements]
        return wire.Ingestion(
            statements=[statement_view(s) for s in stored if s is not None],
            entries=len(entry_ids),
            repeated=repeated,
            credited=counts.get("credited", 0) + counts.get("released", 0),
            suspense=counts.get("suspense", 0),
            collection=counts.get("collection", 0),
            debit=counts.get("debit", 0),
        )

    def _check_accounts(self, parsed: StatementFile) -> None:
        for report in parsed.reports:
            account = self._accounts.get(report.currency)
            if account is None or not account.identifies(report.account):
                raise UnknownSettlementAccount(
                    f"report {report.report_id} is for account {report.account} in"
                    f" {report.currency}, which is not the platform's settlement account"
                )

    async def _decide(self, parsed: StatementFile) -> dict[tuple[str, int], _Decision]:
        """What becomes of each booked entry, by (report id, position): one query for the
        collections, one for the tenants, whatever the number of entries."""
        entries = [(report, entry) for report in parsed.reports for entry in report.entries]
        incoming = [(r, e) for r, e in entries if e.direction == "credit"]
        collections = await records.collections_by_end_to_end_id(
            self._pool, sorted({e2e for _, e in incoming for e2e in e.end_to_end_ids})
        )
        named = {id(e): _named_tenants(e) for _, e in incoming}
        existing = await records.tenants_existing(
            self._pool, sorted({t for tenants in named.values() for t in tenants})
        )
        decisions: dict[tuple[str, int], _Decision] = {}
        for report, entry in entries:
            key = (report.report_id, entry.position)
            collection = next(
                (collections[e] for e in entry.end_to_end_ids if e in collections), None
            )
            if entry.direction == "debit":
                decisions[key] = _Decision(status="debit")
            elif collection is not None:
                decisions[key] = _Decision(status="collection", tenant_id=collection)
            else:
                decisions[key] = _match(
                    named[id(entry)], existing, structured=bool(entry.creditor_references)
                )
        return decisions

    async def _record(
        self, parsed: StatementFile, decisions: Mapping[tuple[str, int], _Decision], *, actor: str
    ) -> tuple[list[records.StatementRow], list[uuid.UUID], int]:
        """Record the statements, their new entries and their lists, in one transaction: the
        statements as stored, the file's entry ids, and how many entries were known before."""
        new = {r.report_id: _new_statement(parsed, r, actor=actor) for r in parsed.reports}
        async with self._pool.acquire() as connection, connection.transaction():
            stored = await records.record_statements(connection, list(new.values()))
            by_report = {}
            for report in parsed.reports:
                row = _stored_for(stored, new[report.report_id])
                by_report[report.report_id] = row
            entries: list[records.NewEntry] = []
            lines: list[tuple[uuid.UUID, int, uuid.UUID]] = []
            for report in parsed.reports:
                statement_id = by_report[report.report_id].id
                for entry in report.entries:
                    decision = decisions[(report.report_id, entry.position)]
                    made = _new_entry(report, entry, statement_id=statement_id, decision=decision)
                    entries.append(made)
                    lines.append((statement_id, entry.position, made.id))
            ids = [entry.id for entry in entries]
            known = await connection.fetchval(
                "SELECT count(*) FROM bank_entries WHERE id = ANY($1::uuid[])", ids
            )
            await records.record_entries(connection, entries, lines)
        return list(by_report.values()), ids, int(known)

    async def _settle(self, entry_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Move the pending entries among `entry_ids`, then settle them with their events
        and exceptions in one transaction; the ids this call settled."""
        pending = await records.pending_entries(self._pool, entry_ids)
        if not pending:
            return set()
        outcomes = await self._bank.credit([_credit(entry) for entry in pending])
        refused = [e.id for e in pending if outcomes[e.id.int] == "wallet_not_open"]
        if refused:
            await records.reroute_to_suspense(self._pool, refused, reason="wallet_not_open")
            pending = await records.pending_entries(self._pool, entry_ids)
            await self._bank.credit([_credit(e) for e in pending if e.id in set(refused)])
        settlements = [
            records.Settlement(
                entry_id=e.id,
                status="credited" if e.status == "pending_credit" else "suspense",
                suspense_reason=e.suspense_reason,
            )
            for e in pending
        ]
        async with self._pool.acquire() as connection, connection.transaction():
            settled = await records.settle(connection, settlements)
            now = datetime.datetime.now(tz=datetime.UTC)
            credited = [e for e in pending if e.id in settled and e.status == "pending_credit"]
            if credited:
                events = [_credited_event(e, source="bank_statement", at=now) for e in credited]
                await connection.execute(event_insert.sql(), events)
            unmatched = [e for e in pending if e.id in settled and e.status == "pending_suspense"]
            await exceptions.record(connection, [_unmatched(e) for e in unmatched])
        return settled

    async def release(
        self, exception_id: int, *, tenant_id: int, note: str, actor: str
    ) -> exceptions.ExceptionRow:
        """Resolve an unmatched entry's exception by releasing its money from suspense to
        the tenant's wallet, once: audited first, then the ledger (an id derived from the
        entry: a repeat is the same transfer, another tenant a conflict), then the
        resolution, the entry's new status and the tenant's `funding.credited` together."""
        row, entry = await self._releasable(exception_id, tenant_id=tenant_id)
        await record_admin_action(
            self._pool,
            actor=actor,
            action="exception.resolve",
            target=f"exception:{row.id}",
            details={"kind": row.kind, "note": note, "release_to_tenant": tenant_id},
        )
        await self._bank.release(
            entry_id=entry.id.int,
            tenant_id=tenant_id,
            currency_code=entry.currency,
            amount_minor=entry.amount_minor,
        )
        released = msgspec.structs.replace(entry, tenant_id=tenant_id)
        at = datetime.datetime.now(tz=datetime.UTC)
        async with self._pool.acquire() as connection, connection.transaction():
            resolved = await exceptions.resolve(connection, row.id, resolved_by=actor, note=note)
            if resolved is None or not await records.mark_released(
                connection, entry.id, tenant_id=tenant_id
            ):
                raise ExceptionAlreadyResolved(
                    f"exception {encode_id('exc', exception_id)} is resolved"
                )
            event = _credited_event(released, source="suspense_release", at=at)
            await connection.execute(event_insert.sql(), [event])
        return resolved

    async def _releasable(
        self, exception_id: int, *, tenant_id: int
    ) -> tuple[exceptions.ExceptionRow, records.EntryRow]:
        row = await exceptions.get(self._pool, uuid.UUID(int=exception_id))
        if row is None:
            raise ExceptionUnknown(f"no exception {encode_id('exc', exception_id)}")
        if row.status != "open":
            raise ExceptionAlreadyResolved(
                f"exception {encode_id('exc', exception_id)} is resolved"
            )
        entry = (
            None if row.object_id is None else await records.get_entry(self._pool, row.object_id)
        )
        if row.kind != unmatched_entry_kind or entry is None or entry.status != "suspense":
            raise ReleaseNotApplicable(
                "only an unmatched statement entry's money, in suspense, can be released",
                field="tenant_id",
            )
        if not await records.tenants_existing(self._pool, [tenant_id]):
            raise UnknownTenant(f"there is no tenant {tenant_id}", field="tenant_id")
        return row, entry

    async def statements(self, page: PageRequest[Position]) -> Page[wire.BankStatement]:
        return (await records.statement_page(self._pool, page)).map(statement_view)

    async def statement(
        self, statement_id: int, page: PageRequest[int]
    ) -> wire.BankStatementDetail:
        row = await records.get_statement(self._pool, uuid.UUID(int=statement_id))
        if row is None:
            raise StatementUnknown(f"no bank statement {encode_id('stmt', statement_id)}")
        lines = await records.line_page(self._pool, row.id, page)
        return wire.BankStatementDetail(
            statement=statement_view(row),
            entries=[
                wire.StatementLine(position=line.position, entry=entry_view(line.entry))
                for line in lines.items
            ],
            next_cursor=lines.next_cursor,
        )


def _named_tenants(entry: Entry) -> set[int]:
    """The tenants the entry's remittance names by funding reference: the structured
    creditor reference exactly, the unstructured lines however the payer spaced it."""
    structured = {t for t in map(tenant_of, entry.creditor_references) if t is not None}
    return structured | tenants_in(entry.unstructured)


def _match(named: set[int], existing: set[int], *, structured: bool) -> _Decision:
    """Credit the one existing tenant the entry names; otherwise suspense, saying why: two
    tenants named, a reference naming no tenant, a structured reference that is no
    funding reference (a typo, or another creditor's), or no reference at all."""
    tenants = named & existing
    if len(tenants) == 1:
        return _Decision(status="pending_credit", tenant_id=next(iter(tenants)))
    if len(tenants) > 1:
        return _Decision(status="pending_suspense", reason="ambiguous_reference")
    if named:
        return _Decision(status="pending_suspense", reason="unknown_reference")
    if structured:
        return _Decision(status="pending_suspense", reason="unreadable_reference")
    return _Decision(status="pending_suspense", reason="no_reference")


def _new_statement(parsed: StatementFile, report: Report, *, actor: str) -> records.NewStatement:
    return records.NewStatement(
        id=uuid.uuid4(),
        kind=parsed.kind,
        message_type=parsed.message_type,
        message_id=parsed.message_id,
        report_id=report.report_id,
        account=report.account,
        currency=report.currency,
        file_sha256=parsed.sha256,
        bank_created_at=parsed.created_at,
        opening_balance_minor=report.opening.amount_minor if report.opening else None,
        opening_balance_date=report.opening.date if report.opening else None,
        closing_balance_minor=report.closing.amount_minor if report.closing else None,
        closing_balance_date=report.closing.date if report.closing else None,
        entry_count=len(report.entries),
        not_booked_count=report.not_booked_count,
        ingested_by=actor,
    )


def _stored_for(
    stored: Sequence[records.StatementRow], new: records.NewStatement
) -> records.StatementRow:
    """The stored statement `new` is; another file's statement of the same message is a
    conflict, never a second truth."""
    for row in stored:
        same_message = (row.account, row.message_id, row.report_id) == (
            new.account, new.message_id, new.report_id,
        )  # fmt: skip
        same_file = (row.file_sha256, row.report_id) == (new.file_sha256, new.report_id)
        if same_message and not same_file:
            raise StatementConflict(
                f"message {new.message_id} ({new.report_id}) for {new.account} was recorded"
                " from another file"
            )
        if same_message or same_file:
            return row
    raise StatementConflict(f"report {new.report_id} could not be recorded")


def _new_entry(
    report: Report, entry: Entry, *, statement_id: uuid.UUID, decision: _Decision
) -> records.NewEntry:
    remittance = " ".join(entry.unstructured)[:remittance_length_max] or None
    return records.NewEntry(
        id=entry_id_of(account=report.account, entry_key=entry.key),
        statement_id=statement_id,
        account=report.account,
        entry_key=entry.key,
        key_source=entry.key_source,
        currency=report.currency,
        amount_minor=entry.amount_minor,
        direction=entry.direction,
        booking_date=entry.booking_date,
        value_date=entry.value_date,
        remittance=remittance,
        creditor_reference=next(iter(entry.creditor_references), None),
        end_to_end_id=next(iter(entry.end_to_end_ids), None),
        status=decision.status,
        suspense_reason=decision.reason,
        tenant_id=decision.tenant_id,
    )


def _credit(entry: records.EntryRow) -> EntryCredit:
    return EntryCredit(
        entry_id=entry.id.int,
        tenant_id=entry.tenant_id if entry.status == "pending_credit" else None,
        currency_code=entry.currency,
        amount_minor=entry.amount_minor,
    )


def _credited_event(
    entry: records.EntryRow, *, source: str, at: datetime.datetime
) -> tuple[object, ...]:
    """The `funding.credited` outbox row; its id derives from the ledger transfer, so a
    repeat writes the very same event."""
    leg = Leg.FUNDING_CREDIT if source == "bank_statement" else Leg.SUSPENSE_RELEASE
    payload = wire.FundingCredit(
        id=encode_id("bke", entry.id.int),
        currency=entry.currency,
        amount=entry.amount_minor,
        source="bank_statement" if source == "bank_statement" else "suspense_release",
        remittance=entry.remittance,
        end_to_end_id=entry.end_to_end_id,
        booking_date=entry.booking_date,
        value_date=entry.value_date,
        created_at=at,
    )
    return (
        as_uuid(transfer_id(object_id=entry.id.int, leg=leg)),
        entry.tenant_id,
        "funding.credited",
        entry.id,
        msgspec.json.encode(payload).decode(),
    )


def _unmatched(entry: records.EntryRow) -> exceptions.NewException:
    return exceptions.NewException(
        id=uuid.uuid4(),
        kind=unmatched_entry_kind,
        dedupe_key=f"statement_entry:{entry.id}",
        currency=entry.currency,
        amount_minor=entry.amount_minor,
        object_type="bank_entry",
        object_id=entry.id,
        details={
            "entry_id": encode_id("bke", entry.id.int),
            "statement_id": encode_id("stmt", entry.statement_id.int),
            "reason": entry.suspense_reason,
            "remittance": entry.remittance,
            "creditor_reference": entry.creditor_reference,
            "end_to_end_id": entry.end_to_end_id,
        },
    )


def statement_view(row: records.StatementRow) -> wire.BankStatement:
    def balance(amount: int | None, date: datetime.date | None) -> wire.StatementBalance | None:
        return (
            None
            if amount is None or date is None
            else wire.StatementBalance(amount=amount, date=date)
        )

    return wire.BankStatement(
        id=encode_id("stmt", row.id.int),
        kind="camt.053" if row.kind == "camt.053" else "camt.054",
        message_type=row.message_type,
        message_id=row.message_id,
        report_id=row.report_id,
        account=row.account,
        currency=row.currency,
        opening_balance=balance(row.opening_balance_minor, row.opening_balance_date),
        closing_balance=balance(row.closing_balance_minor, row.closing_balance_date),
        entry_count=row.entry_count,
        not_booked_count=row.not_booked_count,
        status="processed" if row.status == "processed" else "processing",
        ingested_by=row.ingested_by,
        file_sha256=row.file_sha256.hex(),
        bank_created_at=row.bank_created_at,
        created_at=row.created_at,
        processed_at=row.processed_at,
    )


def entry_view(row: records.EntryRow) -> wire.BankEntry:
    return msgspec.convert(
        {
            **msgspec.structs.asdict(row),
            "id": encode_id("bke", row.id.int),
            "statement_id": encode_id("stmt", row.statement_id.int),
            "amount": row.amount_minor,
        },
        wire.BankEntry,
    )
