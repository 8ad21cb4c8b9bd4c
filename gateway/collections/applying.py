"""Provider notifications applied to the ledger and the rows, exactly once, in any order.

The intake only stores what a provider said (`gateway.collections.notifications`); this
module applies stored notifications in batches, for the worker's passes and for a lookup
that found a final answer:

1. the ledger first: a collection that succeeded is credited to its tenant's wallet, one
   that was returned is credited (if it was not) and reversed; both are idempotent by ids
   derived from the collection's id, so a pass repeated after a crash moves nothing twice;
2. then ONE Postgres transaction: the objects locked, the new state, its events, any
   operations exception, and the notifications marked applied.

A crash between the two is repaired by the next pass, which finds the notifications still
to apply, asks the ledger again (it answers what it did) and writes the state.

What a notification does depends only on the state it finds (`collection_step`,
`mandate_step`), and the steps are built so that the final state and the ledger's effect
of a provider's true story do not depend on the order or repetition of its notifications:
a `returned` before its `succeeded` is credited then reversed and ends `returned`; a
`succeeded` after `returned` changes nothing. A contradiction (a `failed` after a
`succeeded`) changes nothing and is left to a person, as an operations exception.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping, Sequence
from typing import Literal

import asyncpg
import msgspec
import structlog

from compliance.audit.outbox import outbox_insert_one, outbox_row
from gateway.collections import records
from gateway.collections.records import CollectionRow, Event, MandateRow, NotificationRow
from gateway.collections.views import collection_view, mandate_view, payload
from gateway.operations.records import NewException
from gateway.operations.records import record as record_exceptions
from ledger.collections import CollectionMovement, CollectionsLedger, Reversal
from ledger.errors import LedgerError
from ledger.invariants import ensure
from rails.collections.provider import MandateProvider

log = structlog.get_logger("kovra.collections")
notifications_per_pass_max = 1_000
failure_description_length_max = 500

Outcome = Literal["moved", "repeat", "contradiction", "ignored"]


class CollectionStep(msgspec.Struct, frozen=True, kw_only=True):
    """What one notification does to a collection in a given state."""

    to: str
    credit: bool = False
    reverse: bool = False
    outcome: Outcome


def _repeat(status: str) -> CollectionStep:
    return CollectionStep(to=status, outcome="repeat")


def _contradicted(status: str) -> CollectionStep:
    return CollectionStep(to=status, outcome="contradiction")


# What a `collection.<notice>` notification does from each state: every pair, written out.
collection_steps: Mapping[tuple[str, str], CollectionStep] = {
    ("pending", "succeeded"): CollectionStep(to="succeeded", credit=True, outcome="moved"),
    ("pending", "failed"): CollectionStep(to="failed", outcome="moved"),
    # A return says the money came in and went back: credit, then reverse.
    ("pending", "returned"): CollectionStep(
        to="returned", credit=True, reverse=True, outcome="moved"
    ),
    ("succeeded", "succeeded"): _repeat("succeeded"),
    ("succeeded", "failed"): _contradicted("succeeded"),
    ("succeeded", "returned"): CollectionStep(to="returned", reverse=True, outcome="moved"),
    ("failed", "succeeded"): _contradicted("failed"),
    ("failed", "failed"): _repeat("failed"),
    ("failed", "returned"): _contradicted("failed"),
    # The success a return implied, arriving late: already applied.
    ("returned", "succeeded"): _repeat("returned"),
    ("returned", "failed"): _contradicted("returned"),
    ("returned", "returned"): _repeat("returned"),
}
# What a `mandate.<notice>` notification does from each state. A `failed` after `active` is
# the bank cancelling the mandate; a deactivated or expired mandate stays as it is.
mandate_steps: Mapping[tuple[str, str], tuple[str, Outcome]] = {
    ("pending", "active"): ("active", "moved"),
    ("pending", "failed"): ("failed", "moved"),
    ("active", "active"): ("active", "repeat"),
    ("active", "failed"): ("failed", "moved"),
    ("failed", "active"): ("failed", "contradiction"),
    ("failed", "failed"): ("failed", "repeat"),
    ("deactivated", "active"): ("deactivated", "ignored"),
    ("deactivated", "failed"): ("deactivated", "ignored"),
    ("expired", "active"): ("expired", "ignored"),
    ("expired", "failed"): ("expired", "ignored"),
}


def collection_step(status: str, notice: str) -> CollectionStep:
    """The step a `collection.<notice>` notification takes from `status`."""
    step = collection_steps.get((status, notice))
    if step is None:
        raise ValueError(f"no collection step from {status!r} on {notice!r}")
    return step


def mandate_step(status: str, notice: str) -> tuple[str, Outcome]:
    """The state a `mandate.<notice>` notification leads to from `status`, and what it did."""
    step = mandate_steps.get((status, notice))
    if step is None:
        raise ValueError(f"no mandate step from {status!r} on {notice!r}")
    return step


class CollectionFold(msgspec.Struct, frozen=True, kw_only=True):
    """Notifications applied in order from a state: the final state, the transitions
    passed (each an event), the ledger's work, and each notification's outcome."""

    final: str
    transitions: tuple[str, ...]
    credit: bool
    reverse: bool
    outcomes: tuple[Outcome, ...]


def fold_collection(status: str, notices: Sequence[str]) -> CollectionFold:
    transitions: list[str] = []
    outcomes: list[Outcome] = []
    credit = reverse = False
    for notice in notices:
        step = collection_step(status, notice)
        if step.to != status and step.to == "returned" and status == "pending":
            transitions.append("succeeded")
        if step.to != status:
            transitions.append(step.to)
        credit, reverse = credit or step.credit, reverse or step.reverse
        status = step.to
        outcomes.append(step.outcome)
    return CollectionFold(
        final=status,
        transitions=tuple(transitions),
        credit=credit,
        reverse=reverse,
        outcomes=tuple(outcomes),
    )


def notice_of(notification: NotificationRow) -> str:
    """`succeeded` of `collection.succeeded`: the part after the object's kind."""
    return notification.type.split(".", 1)[1]


class LedgerWork(msgspec.Struct, frozen=True, kw_only=True):
    """What the ledger did for a batch: collections credited (or found credited), and the
    reversals of those returned."""

    credited: frozenset[uuid.UUID]
    reversals: Mapping[uuid.UUID, Reversal]
    # The ledger's refusals, by collection: which step (`credit`, `reverse`) and why.
    refused: Mapping[uuid.UUID, tuple[str, LedgerError]]


class Changes(msgspec.Struct, kw_only=True):
    """What one transaction writes."""

    collections: list[CollectionRow] = msgspec.field(default_factory=list)
    mandates: list[MandateRow] = msgspec.field(default_factory=list)
    events: list[Event] = msgspec.field(default_factory=list)
    exceptions: list[NewException] = msgspec.field(default_factory=list)
    applied: list[tuple[uuid.UUID, str]] = msgspec.field(default_factory=list)
    fatal_failures: list[CollectionRow] = msgspec.field(default_factory=list)


def _by_object(notifications: Sequence[NotificationRow]) -> dict[uuid.UUID, list[NotificationRow]]:
    grouped: dict[uuid.UUID, list[NotificationRow]] = {}
    for notification in notifications:
        ensure(notification.object_id is not None, "a notification to apply names its object")
        assert notification.object_id is not None
        grouped.setdefault(notification.object_id, []).append(notification)
    return grouped


def _keys(notifications: Sequence[NotificationRow], kind: str) -> list[tuple[str, uuid.UUID]]:
    keys = {
        (n.compliance_region, n.object_id)
        for n in notifications
        if n.object_type == kind and n.compliance_region is not None and n.object_id is not None
    }
    return sorted(keys, key=lambda key: key[1])


class Applier:
    """Applies stored notifications: the ledger's half, then the rows' half."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        ledger: CollectionsLedger,
        providers: Mapping[str, MandateProvider],
        batch_size: int = notifications_per_pass_max,
    ) -> None:
        ensure(0 < batch_size <= notifications_per_pass_max, "a pass applies a bounded batch")
        self._pool = pool
        self._ledger = ledger
        self._providers = providers
        self._batch_size = batch_size

    @property
    def ledger(self) -> CollectionsLedger:
        """The ledger's half of the domain (the service opens wallets through it too)."""
        return self._ledger

    async def apply(self, ids: Sequence[uuid.UUID] | None = None) -> int:
        """Apply up to a batch of stored notifications (only `ids`, when given); how many
        were applied."""
        notifications = await records.notifications_to_apply(
            self._pool, limit=self._batch_size, ids=ids
        )
        if not notifications:
            return 0
        current = await records.collections_by_key(
            self._pool, _keys(notifications, "collection"), lock=False
        )
        work = await self._ledger_work(notifications, current)
        async with self._pool.acquire() as connection, connection.transaction():
            changes = await self._changes(connection, notifications, work)
            await self._write(connection, changes)
        return len(changes.applied)

    async def _ledger_work(
        self, notifications: Sequence[NotificationRow], current: Mapping[uuid.UUID, CollectionRow]
    ) -> LedgerWork:
        """Credit and reverse what the notifications call for, from the collections' states
        as read; one call for the credits, one for the reversals."""
        to_credit: list[CollectionRow] = []
        to_reverse: list[CollectionRow] = []
        for object_id, notes in _by_object(notifications).items():
            row = current.get(object_id)
            if row is None:
                continue  # A mandate's notifications: no money moves.
            fold = fold_collection(row.status, [notice_of(n) for n in notes])
            if fold.credit:
                to_credit.append(row)
            if fold.reverse:
                to_reverse.append(row)
        refused: dict[uuid.UUID, tuple[str, LedgerError]] = {}
        credited: set[uuid.UUID] = set()
        if to_credit:
            results = await self._ledger.credit_many([_movement(row) for row in to_credit])
            for row, result in zip(to_credit, results, strict=True):
                if isinstance(result, LedgerError):
                    log.error(
                        "collection_credit_refused",
                        collection_id=str(row.id),
                        code=result.code,
                        detail=result.detail,
                    )
                    refused[row.id] = ("credit", result)
                else:
                    credited.add(row.id)
        reversals: dict[uuid.UUID, Reversal] = {}
        reversible = [row for row in to_reverse if row.id not in refused]
        if reversible:
            answers = await self._ledger.reverse_many([_movement(row) for row in reversible])
            for row, answer in zip(reversible, answers, strict=True):
                if isinstance(answer, LedgerError):
                    log.error(
                        "collection_reversal_refused",
                        collection_id=str(row.id),
                        code=answer.code,
                        detail=answer.detail,
                    )
                    refused[row.id] = ("reverse", answer)
                else:
                    reversals[row.id] = answer
        return LedgerWork(credited=frozenset(credited), reversals=reversals, refused=refused)

    async def _changes(
        self,
        connection: records.Executor,
        notifications: Sequence[NotificationRow],
        work: LedgerWork,
    ) -> Changes:
        """What to write, from the objects as locked now and the notifications this
        transaction holds (another pass may hold some)."""
        held = await records.lock_notifications(connection, [n.id for n in notifications])
        mine = [n for n in notifications if n.id in held]
        collections = await records.collections_by_key(
            connection, _keys(mine, "collection"), lock=True
        )
        mandates = await records.mandates_by_key(connection, _keys(mine, "mandate"), lock=True)
        changes = Changes()
        for object_id, notes in _by_object(mine).items():
            if object_id in collections:
                self._collection_changes(collections[object_id], notes, work, changes)
            elif object_id in mandates:
                self._mandate_changes(mandates[object_id], notes, changes)
        return changes

    def _collection_changes(
        self,
        row: CollectionRow,
        notes: Sequence[NotificationRow],
        work: LedgerWork,
        changes: Changes,
    ) -> None:
        fold = fold_collection(row.status, [notice_of(n) for n in notes])
        if row.id in work.refused:
            # The ledger refused its half (e.g. a settlement account that would go below
            # zero). Its id is spent, so no later pass can succeed: a person must correct
            # the ledger; the notifications stay stored, unapplied, for them to see.
            step, error = work.refused[row.id]
            changes.exceptions.append(_ledger_refusal(row, step=step, error=error))
            return
        if (fold.credit and row.id not in work.credited) or (
            fold.reverse and row.id not in work.reversals
        ):
            return  # The ledger has not done its half yet: the next pass applies these.
        if fold.final != row.status:
            changed = self._collection_after(row, notes, fold.final, work.reversals.get(row.id))
            changes.collections.append(changed)
            view = collection_view(changed)
            changes.events.extend(
                Event(
                    id=records.event_id(row.id, f"collection.{status}"),
                    tenant_id=row.tenant_id,
                    type=f"collection.{status}",
                    object_id=row.id,
                    payload=payload(msgspec.structs.replace(view, status=status)),
                )
                for status in fold.transitions
            )
            if changed.shortfall_minor:
                changes.exceptions.append(_shortfall(changed))
            if (
                changed.status == "failed"
                and changed.failure_code is not None
                and self._is_mandate_fatal(row.provider, changed.failure_code)
            ):
                changes.fatal_failures.append(changed)
        for note, outcome in zip(notes, fold.outcomes, strict=True):
            if outcome == "contradiction":
                changes.exceptions.append(_contradiction(note, row.status, row.tenant_id))
            if _names_other_money(note, row):
                # The ledger moves what Kovra asked for; a provider saying it moved another
                # sum (or currency) is for a person to reconcile, never to follow.
                changes.exceptions.append(_amount_mismatch(note, row))
            changes.applied.append((note.id, outcome))

    def _collection_after(
        self,
        row: CollectionRow,
        notes: Sequence[NotificationRow],
        final: str,
        reversal: Reversal | None,
    ) -> CollectionRow:
        reason = next(
            (n.reason_code for n in reversed(notes) if notice_of(n) == final and n.reason_code),
            None,
        )
        changed = msgspec.structs.replace(row, status=final)
        if final in ("failed", "returned") and reason is not None:
            changed = msgspec.structs.replace(
                changed,
                failure_code=reason,
                failure_description=self._describe(row.provider, reason),
            )
        if final == "returned":
            ensure(reversal is not None, "a collection is returned only once reversed")
            assert reversal is not None
            changed = msgspec.structs.replace(
                changed,
                returned_minor=reversal.reversed_minor,
                shortfall_minor=reversal.shortfall_minor,
            )
        return changed

    def _is_mandate_fatal(self, provider_name: str, reason: str) -> bool:
        provider = self._providers.get(provider_name)
        return provider is not None and provider.is_mandate_fatal(reason)

    def _describe(self, provider_name: str, reason: str) -> str:
        provider = self._providers.get(provider_name)
        description = reason if provider is None else provider.reason_description(reason)
        return description[:failure_description_length_max]

    def _mandate_changes(
        self, row: MandateRow, notes: Sequence[NotificationRow], changes: Changes
    ) -> None:
        status, reason = row.status, None
        transitions: list[str] = []
        for note in notes:
            to, outcome = mandate_step(status, notice_of(note))
            if to != status:
                transitions.append(to)
                reason = note.reason_code if to == "failed" else reason
            if outcome == "contradiction":
                changes.exceptions.append(_contradiction(note, status, row.tenant_id))
            changes.applied.append((note.id, outcome))
            status = to
        if status == row.status:
            return
        changed = msgspec.structs.replace(row, status=status)
        if "active" in transitions:
            changed = msgspec.structs.replace(changed, activated_at=_now())
        if status == "failed":
            changed = msgspec.structs.replace(
                changed,
                failure_code=reason,
                failure_description=None
                if reason is None
                else self._describe(row.provider, reason),
            )
        changes.mandates.append(changed)
        view = mandate_view(changed)
        changes.events.extend(
            Event(
                id=records.event_id(row.id, f"mandate.{to}"),
                tenant_id=row.tenant_id,
                type=f"mandate.{to}",
                object_id=row.id,
                payload=payload(msgspec.structs.replace(view, status=to)),
            )
            for to in transitions
        )

    async def _write(self, connection: records.Executor, changes: Changes) -> None:
        await records.write_collections(connection, changes.collections)
        await records.write_mandates(connection, changes.mandates)
        for failed in changes.fatal_failures:
            changes.events.extend(await _deactivate_for(connection, failed))
        await records.insert_events(connection, changes.events)
        await record_exceptions(connection, changes.exceptions)
        await records.mark_applied(connection, changes.applied)


async def _deactivate_for(connection: records.Executor, failed: CollectionRow) -> list[Event]:
    """Deactivate the mandate of a collection that failed for a reason fatal to it (the
    account closed, the mandate cancelled at the bank), audited; its event."""
    mandate = await records.deactivate_mandate(
        connection,
        region=failed.compliance_region,
        mandate_id=failed.mandate_id,
        from_statuses=("pending", "active"),
    )
    if mandate is None:
        return []
    await connection.execute(
        outbox_insert_one,
        *outbox_row(
            record_id=records.event_id(mandate.id, "audit.mandate.deactivate"),
            actor=f"provider:{mandate.provider}",
            action="mandate.deactivate",
            target=f"mandate:{mandate.id}",
            details={
                "tenant_id": mandate.tenant_id,
                "collection_id": str(failed.id),
                "reason_code": failed.failure_code,
            },
        ),
    )
    return [
        Event(
            id=records.event_id(mandate.id, "mandate.deactivated"),
            tenant_id=mandate.tenant_id,
            type="mandate.deactivated",
            object_id=mandate.id,
            payload=payload(mandate_view(mandate)),
        )
    ]


def _movement(row: CollectionRow) -> CollectionMovement:
    return CollectionMovement(
        collection_id=row.id.int,
        tenant_id=row.tenant_id,
        currency_code=row.currency,
        amount_minor=row.amount_minor,
    )


def _collection_exception(
    row: CollectionRow,
    *,
    kind: str,
    dedupe_key: str,
    details: dict[str, object],
    amount_minor: int | None = None,
) -> NewException:
    """An operations exception about a collection: its tenant, currency and amount (the
    collection's own unless another is the point), recorded once per `dedupe_key`."""
    return NewException(
        id=uuid.uuid4(),
        kind=kind,
        dedupe_key=dedupe_key,
        tenant_id=row.tenant_id,
        currency=row.currency,
        amount_minor=row.amount_minor if amount_minor is None else amount_minor,
        object_type="collection",
        object_id=row.id,
        details=details,
    )


def _shortfall(row: CollectionRow) -> NewException:
    return _collection_exception(
        row,
        kind="collection_return_shortfall",
        dedupe_key=f"collection_shortfall:{row.id}",
        amount_minor=row.shortfall_minor,
        details={
            "amount_minor": row.amount_minor,
            "returned_minor": row.returned_minor,
            "reason_code": row.failure_code,
        },
    )


def _ledger_refusal(row: CollectionRow, *, step: str, error: LedgerError) -> NewException:
    return _collection_exception(
        row,
        kind="collection_ledger_refused",
        # Once per step: TigerBeetle remembers the failed transfer id, so every later try
        # answers `attempt_already_failed`; the first refusal says why.
        dedupe_key=f"collection_ledger_refused:{row.id}:{step}",
        details={"step": step, "code": error.code, "detail": error.detail},
    )


def _names_other_money(note: NotificationRow, row: CollectionRow) -> bool:
    """Whether a notification carries an amount or currency other than the collection's."""
    return (note.amount_minor is not None and note.amount_minor != row.amount_minor) or (
        note.currency is not None and note.currency != row.currency
    )


def _amount_mismatch(note: NotificationRow, row: CollectionRow) -> NewException:
    return _collection_exception(
        row,
        kind="provider_amount_mismatch",
        dedupe_key=f"provider_amount_mismatch:{note.id}",
        details={
            "provider": note.provider,
            "event_id": note.event_id,
            "type": note.type,
            "notified_amount_minor": note.amount_minor,
            "notified_currency": note.currency,
        },
    )


def _contradiction(note: NotificationRow, status: str, tenant_id: int) -> NewException:
    return NewException(
        id=uuid.uuid4(),
        kind="provider_notification_contradiction",
        dedupe_key=f"notification_contradiction:{note.id}",
        tenant_id=tenant_id,
        object_type=note.object_type,
        object_id=note.object_id,
        details={
            "provider": note.provider,
            "event_id": note.event_id,
            "type": note.type,
            "state": status,
            "reason_code": note.reason_code,
        },
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.UTC)
