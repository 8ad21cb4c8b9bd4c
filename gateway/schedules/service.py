"""Schedules as a tenant manages them (created checked and audited, listed, deleted audited),
and the due pass that starts their occurrences' runs (`run_due`), for the worker and for
`kovra schedules run --at`.

A cron schedule is due at its `next_run_at`. The pass claims due schedules in bounded
batches (`FOR UPDATE SKIP LOCKED`); for each, in the one transaction that holds its row, it
records the latest occurrence at or before the pass's instant, starts that occurrence's run
(`Orchestrations.start`) and moves `next_run_at` past the instant. Occurrences missed while
no worker ran are not caught up one by one: the latest runs, once. The run's id derives from
(schedule, occurrence), and the occurrence's primary key is the same pair, so however many
workers pass at once, an occurrence starts one run.

A balance trigger is due at its next check. The pass claims it and moves its next check an
interval on (committed at once: at most one check per interval whatever the workers), asks
the providers for the balances outside any transaction (bounded concurrency: a provider is
a network call), and starts a pull, in a second transaction, for each balance at or above
its threshold, unless the trigger's previous pull is still running (the balance does not
fall until it lands).
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import uuid
import zoneinfo
from collections.abc import Mapping, Sequence
from typing import Protocol

import asyncpg
import structlog

from compliance.audit.outbox import outbox_insert_one, outbox_row
from gateway.collections.wire import collection_amount_minor_max
from gateway.http.ids import decode_id, encode_id, uuid_from_bytes
from gateway.http.paging import Page, PageRequest, Position
from gateway.http.ratelimit import Principal
from gateway.http.wire import fields_at_fault
from gateway.orchestrations.service import MandateFacts, PullIntent
from gateway.schedules import records, wire
from gateway.schedules.cron import check_cron, check_timezone, latest_at_or_before, next_after
from gateway.schedules.errors import InvalidSchedule, ScheduleNotFound
from gateway.schedules.records import Advance, DueSchedule, NewOccurrence, ScheduleRow
from ledger.invariants import ensure
from rails.collections.provider import MandateProvider, ProviderUnavailable

log = structlog.get_logger("kovra.schedules")
schedule_prefix = "sch"
customer_prefix = "cus"
mandate_prefix = "mdt"
orchestration_prefix = "orc"
# Balances asked of providers at once by one pass.
balance_checks_in_flight_max = 16
# Batches one call of `run_due` claims of each kind before it returns (the worker calls
# again at once when it did something): a bound on one call, not on what is due.
batches_per_pass_max = 20
mandate_inactive = "mandate_inactive"


class PullStarter(Protocol):
    """What schedules need of orchestrations (`gateway.orchestrations`): a pull's checks,
    and a run started inside the caller's transaction."""

    async def check_pull(
        self, *, tenant_id: int, customer_id: int, mandate_id: int, amount_minor: int
    ) -> MandateFacts: ...

    async def start(self, connection: records.Executor, intent: PullIntent) -> bool: ...


class CustomerLookup(Protocol):
    """What schedules need of customers: one by id, or `not_found`."""

    async def get(self, *, tenant_id: int, customer_id: int) -> object: ...


def run_id(schedule_id: uuid.UUID, occurrence_at: datetime.datetime) -> int:
    """The orchestration run of one occurrence: the same for every worker that computes it."""
    moment = occurrence_at.astimezone(datetime.UTC).isoformat()
    digest = hashlib.blake2b(
        f"{schedule_id}:{moment}".encode(), digest_size=16, person=b"kovra.schedule"
    ).digest()
    return uuid_from_bytes(digest).int


def audit_id(schedule_id: uuid.UUID, action: str) -> uuid.UUID:
    digest = hashlib.blake2b(
        f"{schedule_id}:audit.{action}".encode(), digest_size=16, person=b"kovra.audit"
    ).digest()
    return uuid_from_bytes(digest)


def view(row: ScheduleRow) -> wire.Schedule:
    return wire.Schedule(
        id=encode_id(schedule_prefix, row.id.int),
        customer_id=encode_id(customer_prefix, row.customer_id.int),
        mandate_id=encode_id(mandate_prefix, row.mandate_id.int),
        kind=row.kind,  # type: ignore[arg-type]
        status=row.status,  # type: ignore[arg-type]
        currency=row.currency,
        amount=row.amount_minor,
        reference=row.reference,
        cron=row.cron,
        timezone=row.timezone,
        threshold=row.threshold_minor,
        check_every_minutes=row.check_every_minutes,
        next_run_at=row.next_run_at if row.status == "active" else None,
        last_run_at=row.last_run_at,
        created_at=row.created_at,
        deleted_at=row.deleted_at,
    )


def check_kind_fields(body: wire.ScheduleCreate) -> None:
    """Each kind's fields given, the other kind's left out (`wire.schedule_kind_fields`, as
    the document says); `validation_error` naming the first field at fault."""
    field, missing = fields_at_fault(body, "kind", wire.schedule_kind_fields)
    if field:
        verb = "needs" if missing else "takes no"
        raise InvalidSchedule(f"a {body.kind} schedule {verb} {field}", field=field)


class Schedules:
    """Schedules of every tenant, and the due pass, through one process's connections."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        pulls: PullStarter,
        customers: CustomerLookup,
        providers: Mapping[str, MandateProvider],
        batch_size: int = records.claim_batch_size_max,
    ) -> None:
        ensure(0 < batch_size <= records.claim_batch_size_max, "a pass claims a bounded batch")
        self._pool = pool
        self._pulls = pulls
        self._customers = customers
        self._providers = providers
        self._batch_size = batch_size

    async def create(
        self,
        principal: Principal,
        *,
        customer_id: int,
        schedule_id: int,
        body: wire.ScheduleCreate,
        now: datetime.datetime | None = None,
    ) -> wire.Schedule:
        """A new schedule, checked (its kind's fields, the cron expression and zone, the pull
        as a user's pull would be) and stored with its audit record; a retried request
        answers the schedule it created."""
        moment = now or datetime.datetime.now(tz=datetime.UTC)
        check_kind_fields(body)
        row_id = uuid.UUID(int=schedule_id)
        cron, next_run_at = self._first_due(body, moment)
        # The document gives the id's pattern (`MandateId`): one of that shape naming no
        # mandate is `not_found`.
        mandate_id = decode_id(mandate_prefix, body.mandate_id)
        facts = await self._pulls.check_pull(
            tenant_id=principal.tenant_id,
            customer_id=customer_id,
            mandate_id=mandate_id,
            # A trigger pulling the excess has no amount yet: the bounds hold for any excess.
            amount_minor=body.amount or 1,
        )
        row = ScheduleRow(
            id=row_id,
            tenant_id=principal.tenant_id,
            compliance_region=facts.compliance_region,
            customer_id=uuid.UUID(int=customer_id),
            mandate_id=uuid.UUID(int=mandate_id),
            kind=body.kind,
            currency=facts.currency,
            amount_minor=body.amount,
            reference=body.reference or f"schedule {encode_id(schedule_prefix, schedule_id)}",
            cron=cron,
            timezone=body.timezone,
            threshold_minor=body.threshold,
            check_every_minutes=None
            if body.kind == "cron"
            else body.check_every_minutes or wire.check_every_minutes_default,
            status="active",
            next_run_at=next_run_at,
            last_run_at=None,
            created_at=moment,
            deleted_at=None,
        )
        async with self._pool.acquire() as connection, connection.transaction():
            stored = await records.insert_schedule(connection, row)
            if stored is not None:
                await connection.execute(
                    outbox_insert_one, *_audit(stored, principal, "schedule.create")
                )
        return view(stored or await self._row(principal, customer_id, schedule_id))

    @staticmethod
    def _first_due(
        body: wire.ScheduleCreate, now: datetime.datetime
    ) -> tuple[str | None, datetime.datetime]:
        """The normalised cron expression and the first instant the schedule is due: a cron
        schedule's next occurrence, a trigger's first check (now)."""
        if body.kind != "cron":
            return None, now
        ensure(body.cron is not None and body.timezone is not None, "checked by kind")
        zone = check_timezone(body.timezone or "")
        cron = check_cron(body.cron or "", zone=zone, now=now)
        return cron, next_after(cron, zone, now)

    async def _row(self, principal: Principal, customer_id: int, schedule_id: int) -> ScheduleRow:
        row = await records.get_schedule(
            self._pool,
            tenant_id=principal.tenant_id,
            customer_id=uuid.UUID(int=customer_id),
            schedule_id=uuid.UUID(int=schedule_id),
        )
        if row is None:
            raise ScheduleNotFound(f"no schedule {encode_id(schedule_prefix, schedule_id)}")
        return row

    async def list_schedules(
        self, principal: Principal, *, customer_id: int, page: PageRequest[Position]
    ) -> Page[wire.Schedule]:
        """A page of the customer's active schedules; `not_found` for another's customer."""
        await self._customers.get(tenant_id=principal.tenant_id, customer_id=customer_id)
        rows = await records.list_schedules(
            self._pool,
            tenant_id=principal.tenant_id,
            customer_id=uuid.UUID(int=customer_id),
            page=page,
        )
        return rows.map(view)

    async def delete(
        self, principal: Principal, *, customer_id: int, schedule_id: int
    ) -> wire.Schedule:
        """Delete the schedule (audited): nothing starts for it afterwards. Deleting it again
        answers the deleted schedule."""
        row = await self._row(principal, customer_id, schedule_id)
        if row.status == "deleted":
            return view(row)
        async with self._pool.acquire() as connection, connection.transaction():
            deleted = await records.delete_schedule(connection, schedule_id=row.id)
            if deleted is not None:
                await connection.execute(
                    outbox_insert_one, *_audit(deleted, principal, "schedule.delete")
                )
        return view(deleted or await self._row(principal, customer_id, schedule_id))

    async def run_due(self, at: datetime.datetime) -> wire.RunReport:
        """Start every occurrence due at `at` (up to `batches_per_pass_max` batches of each
        kind); what was started and what was skipped."""
        started: list[wire.Started] = []
        skipped: list[wire.Skipped] = []
        for step in (self._cron_batch, self._balance_batch):
            for _ in range(batches_per_pass_max):
                claimed, batch_started, batch_skipped = await step(at)
                started += batch_started
                skipped += batch_skipped
                if claimed < self._batch_size:
                    break
        return wire.RunReport(at=at, started=started, skipped=skipped)

    async def _cron_batch(
        self, at: datetime.datetime
    ) -> tuple[int, list[wire.Started], list[wire.Skipped]]:
        """One batch of due cron schedules, in one transaction: claimed, their latest
        occurrences recorded and started, their next occurrences set."""
        async with self._pool.acquire() as connection, connection.transaction():
            due = await records.claim_due(connection, kind="cron", at=at, limit=self._batch_size)
            plans: list[tuple[DueSchedule, NewOccurrence]] = []
            skipped: list[wire.Skipped] = []
            advances: list[Advance] = []
            for item in due:
                row = item.schedule
                zone = zoneinfo.ZoneInfo(row.timezone or "UTC")
                occurrence_at = latest_at_or_before(row.cron or "", zone, at)
                following = next_after(row.cron or "", zone, at)
                ensure(occurrence_at <= at < following, "a pass advances a schedule past `at`")
                if item.mandate_status != "active":
                    skipped.append(_skipped(row, occurrence_at, mandate_inactive))
                    advances.append(Advance(schedule_id=row.id, next_run_at=following))
                    continue
                amount = row.amount_minor or 0
                plans.append((item, _occurrence(row, occurrence_at, amount, balance=None)))
                advances.append(
                    Advance(schedule_id=row.id, next_run_at=following, last_run_at=occurrence_at)
                )
            started = await self._start(connection, plans, trigger="schedule")
            await records.advance(connection, advances)
        return len(due), started, skipped

    async def _start(
        self,
        connection: records.Executor,
        plans: Sequence[tuple[DueSchedule, NewOccurrence]],
        *,
        trigger: str,
    ) -> list[wire.Started]:
        """Record the occurrences and start a run for each recorded now, in the caller's
        transaction; an occurrence recorded before starts nothing."""
        recorded = await records.insert_occurrences(connection, [plan for _, plan in plans])
        started: list[wire.Started] = []
        for item, occurrence in plans:
            if (occurrence.schedule_id, occurrence.occurrence_at) not in recorded:
                continue
            row = item.schedule
            await self._pulls.start(connection, _intent(row, occurrence, trigger=trigger))
            started.append(
                wire.Started(
                    schedule_id=encode_id(schedule_prefix, row.id.int),
                    occurrence_at=occurrence.occurrence_at,
                    orchestration_id=encode_id(
                        orchestration_prefix, occurrence.orchestration_id.int
                    ),
                    trigger=trigger,
                    amount=occurrence.amount_minor,
                    currency=row.currency,
                    balance=occurrence.balance_minor,
                )
            )
        return started

    async def _balance_batch(
        self, at: datetime.datetime
    ) -> tuple[int, list[wire.Started], list[wire.Skipped]]:
        """One batch of due balance triggers: claimed and their next check set (committed),
        their balances asked, and a pull started for each at or above its threshold."""
        async with self._pool.acquire() as connection, connection.transaction():
            due = await records.claim_due(
                connection, kind="balance_threshold", at=at, limit=self._batch_size
            )
            await records.advance(
                connection,
                [
                    Advance(schedule_id=item.schedule.id, next_run_at=_next_check(item, at))
                    for item in due
                ],
            )
        balances = await self._balances(due)
        plans: list[tuple[DueSchedule, NewOccurrence]] = []
        skipped: list[wire.Skipped] = []
        for item, balance in zip(due, balances, strict=True):
            row = item.schedule
            reason = _no_pull_reason(item, balance)
            if reason is not None:
                skipped.append(_skipped(row, row.next_run_at, reason))
                continue
            ensure(balance is not None, "a pull has a balance")
            amount = _trigger_amount(row, balance or 0)
            plans.append((item, _occurrence(row, row.next_run_at, amount, balance=balance)))
        if not plans:
            return len(due), [], skipped
        return len(due), *(await self._start_triggered(plans, skipped, at))

    async def _start_triggered(
        self,
        plans: Sequence[tuple[DueSchedule, NewOccurrence]],
        skipped: list[wire.Skipped],
        at: datetime.datetime,
    ) -> tuple[list[wire.Started], list[wire.Skipped]]:
        async with self._pool.acquire() as connection, connection.transaction():
            busy = await records.with_unfinished_runs(
                connection, [item.schedule.id for item, _ in plans]
            )
            ready = [(item, plan) for item, plan in plans if item.schedule.id not in busy]
            skipped += [
                _skipped(item.schedule, plan.occurrence_at, "previous_pull_running")
                for item, plan in plans
                if item.schedule.id in busy
            ]
            started = await self._start(connection, ready, trigger="balance_threshold")
            await records.advance(
                connection,
                [
                    Advance(
                        schedule_id=item.schedule.id,
                        next_run_at=_next_check(item, at),
                        last_run_at=plan.occurrence_at,
                    )
                    for item, plan in ready
                ],
            )
        return started, skipped

    async def _balances(self, due: Sequence[DueSchedule]) -> list[int | None]:
        """Each trigger's mandate's balance from its provider (None when the provider reports
        none, is not configured, or does not answer), `balance_checks_in_flight_max` at once."""
        gate = asyncio.Semaphore(balance_checks_in_flight_max)

        async def ask(item: DueSchedule) -> int | None:
            provider = self._providers.get(item.provider or "")
            if provider is None or item.provider_reference is None:
                return None
            async with gate:
                try:
                    return await provider.balance(item.provider_reference)
                except ProviderUnavailable:
                    log.warning("balance_unavailable", schedule_id=str(item.schedule.id))
                    return None

        return list(await asyncio.gather(*(ask(item) for item in due)))


def _next_check(item: DueSchedule, at: datetime.datetime) -> datetime.datetime:
    """A trigger's next check: an interval after this one."""
    return at + datetime.timedelta(minutes=item.schedule.check_every_minutes or 1)


def _no_pull_reason(item: DueSchedule, balance: int | None) -> str | None:
    """Why a checked trigger starts no pull, or None when it does."""
    row = item.schedule
    if item.mandate_status != "active":
        return mandate_inactive
    if balance is None:
        return "balance_unknown"
    if balance < (row.threshold_minor or 0):
        return "below_threshold"
    if _trigger_amount(row, balance) <= 0:
        return "nothing_above_threshold"
    return None


def _trigger_amount(row: ScheduleRow, balance: int) -> int:
    """A trigger's pull: its amount, or the excess above the threshold (at most what one
    collection may pull)."""
    if row.amount_minor is not None:
        return row.amount_minor
    return min(balance - (row.threshold_minor or 0), collection_amount_minor_max)


def _occurrence(
    row: ScheduleRow, occurrence_at: datetime.datetime, amount: int, *, balance: int | None
) -> NewOccurrence:
    return NewOccurrence(
        schedule_id=row.id,
        occurrence_at=occurrence_at,
        tenant_id=row.tenant_id,
        orchestration_id=uuid.UUID(int=run_id(row.id, occurrence_at)),
        amount_minor=amount,
        balance_minor=balance,
    )


def _intent(row: ScheduleRow, occurrence: NewOccurrence, *, trigger: str) -> PullIntent:
    return PullIntent(
        orchestration_id=occurrence.orchestration_id.int,
        tenant_id=row.tenant_id,
        compliance_region=row.compliance_region,
        customer_id=row.customer_id.int,
        mandate_id=row.mandate_id.int,
        currency=row.currency,
        amount_minor=occurrence.amount_minor,
        reference=row.reference,
        trigger=trigger,
        schedule_id=row.id.int,
        occurrence_at=occurrence.occurrence_at,
    )


def _skipped(row: ScheduleRow, occurrence_at: datetime.datetime, reason: str) -> wire.Skipped:
    return wire.Skipped(
        schedule_id=encode_id(schedule_prefix, row.id.int),
        occurrence_at=occurrence_at,
        reason=reason,
    )


def _audit(
    row: ScheduleRow, principal: Principal, action: str
) -> tuple[uuid.UUID, str, str, str, str]:
    """The audit record of a tenant's act on a schedule, with what the schedule does."""
    details: dict[str, object] = {
        "tenant_id": row.tenant_id,
        "customer_id": str(row.customer_id),
        "mandate_id": str(row.mandate_id),
        "kind": row.kind,
        "amount_minor": row.amount_minor,
        "currency": row.currency,
        "cron": row.cron,
        "timezone": row.timezone,
        "threshold_minor": row.threshold_minor,
        "check_every_minutes": row.check_every_minutes,
    }
    return outbox_row(
        record_id=audit_id(row.id, action),
        actor=f"tenant:{principal.tenant_id}:key:{principal.key_id}",
        action=action,
        target=f"schedule:{row.id}",
        details=details,
    )
