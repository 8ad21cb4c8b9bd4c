"""The collections worker: in passes of bounded batches, it submits pending mandates to
their providers, runs due collections, tells providers of deactivations, applies stored
notifications, expires mandates and, in the sandbox, lets the simulated providers send
their notifications.

Every step is safe to repeat after a crash. Mandates and collections are leased before
their provider is called and keep their lease until the answer is stored, so a worker that
dies mid-call leaves them to the next claim after the lease, which calls the provider again
with the same ids (the providers key their idempotency on them) and gets the same answer.
A provider's final answer in a call's reply is stored as a notification of Kovra's own and
applied through the same path as the provider's notifications (`gateway.collections.
applying`), so money moves in one place only.
"""

from __future__ import annotations

import asyncio
import datetime
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

import asyncpg
import msgspec
import structlog

from gateway.collections import records
from gateway.collections.applying import Applier
from gateway.collections.notifications import notification_uuid
from gateway.collections.records import (
    CollectionRow,
    DueCollection,
    Event,
    MandateRow,
    NewNotification,
    ObjectRef,
)
from gateway.collections.sealed import open_mandate_details, seal_run_message
from gateway.collections.views import collection_view, mandate_view, payload
from gateway.infra.sealing import SecretBox
from ledger.invariants import ensure
from rails.collections.provider import (
    CollectionRequest,
    MandateProvider,
    MandateRequest,
    ProviderUnavailable,
    provider_batch_size_max,
)

log = structlog.get_logger("kovra.collections.worker")
K = TypeVar("K")
T = TypeVar("T")
# Rows one pass claims of each kind; a provider call carries at most
# `provider_batch_size_max` of them.
claim_batch_size_max = 1_000
lease_seconds_default = 60
retry_after_seconds = 5.0
idle_seconds_default = 0.5
# SEPA's rule: a mandate not used for 36 months lapses.
sepa_unused_days = 36 * 30 + 5 * 7  # 36 months, rounded up to the day (1,115 days).
pending_expiry_seconds_default = 7 * 86_400
# How long an unmatched notification is matched again: a provider may notify before the
# worker stored the reference its answer gave (a crash in between).
rematch_window_seconds = 3_600
pain008 = "pain.008"


class CollectionsWorker:
    """One process's collections passes, on exactly the connections they need."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        providers: Mapping[str, MandateProvider],
        secret_box: SecretBox,
        applier: Applier,
        deliver_notifications: Callable[[], Awaitable[int]] | None = None,
        pending_expiry_seconds: int = pending_expiry_seconds_default,
        lease_seconds: int = lease_seconds_default,
        batch_size: int = claim_batch_size_max,
    ) -> None:
        ensure(0 < batch_size <= claim_batch_size_max, "a pass claims a bounded batch")
        self._pool = pool
        self._providers = providers
        self._secret_box = secret_box
        self._applier = applier
        self._deliver_notifications = deliver_notifications
        self._pending_expiry_seconds = pending_expiry_seconds
        self._lease_seconds = lease_seconds
        self._batch_size = batch_size

    async def process_due(self) -> int:
        """One pass of every step; how much it did (0: nothing was due). A step that fails
        is logged and the others still run: a provider that is down, or a ledger that does
        not answer, stops only the work that needs it."""
        steps: list[tuple[str, Callable[[], Awaitable[int]]]] = [
            ("submit_mandates", self.submit_mandates),
            ("run_collections", self.run_collections),
            ("tell_deactivations", self.tell_deactivations),
            ("deliver_notifications", self._deliver_notifications or _nothing),
            ("rematch", self.rematch),
            ("apply", self._applier.apply),
            ("expire", self.expire),
        ]
        done = 0
        for name, step in steps:
            try:
                done += await step()
            except Exception:
                log.exception("collections_step_failed", step=name)
        return done

    async def submit_mandates(self) -> int:
        """Lease pending mandates and send them, one `create_mandates` call per provider;
        how many were leased."""
        rows = await records.claim_mandates(
            self._pool, limit=self._batch_size, lease_seconds=self._lease_seconds
        )
        for name, group in _grouped(rows, key=lambda row: row.provider).items():
            provider = self._providers.get(name)
            if provider is None:
                log.error("mandate_provider_not_configured", provider=name, mandates=len(group))
                continue  # Left leased: tried again once a transport is configured.
            for chunk in _chunks(group, provider_batch_size_max):
                await self._submit_mandates(provider, chunk)
        return len(rows)

    async def _submit_mandates(self, provider: MandateProvider, rows: Sequence[MandateRow]) -> None:
        requests = []
        for row in rows:
            bank_details, holder = open_mandate_details(
                self._secret_box, row.bank_details_sealed, mandate_id=row.id
            )
            requests.append(
                MandateRequest(
                    mandate_id=row.id.int,
                    currency=row.currency,
                    reference=row.reference,
                    bank_details=bank_details,
                    account_holder_name=holder,
                    consent_accepted_at=row.consent_accepted_at,
                )
            )
        try:
            answers = await provider.create_mandates(requests)
        except ProviderUnavailable:
            log.warning("mandate_provider_unavailable", provider=provider.name.value)
            await records.release_mandates(self._pool, rows, after_seconds=retry_after_seconds)
            return
        ensure(len(answers) == len(rows), "a provider answers every request")
        final = [
            _answer_notification(
                provider=provider.name.value,
                target=_mandate_ref(row),
                kind="mandate",
                outcome=answer.outcome,
                provider_reference=answer.provider_reference,
                reason_code=answer.reason_code,
                amount_minor=None,
                currency=row.currency,
            )
            for row, answer in zip(rows, answers, strict=True)
            if answer.outcome != "pending"
        ]
        async with self._pool.acquire() as connection, connection.transaction():
            await records.record_mandate_references(
                connection, rows, [answer.provider_reference for answer in answers]
            )
            await records.insert_matched_notifications(connection, final)

    async def run_collections(self) -> int:
        """Lease due collections; fail those whose mandate is no longer active; send the
        rest in one collection run per provider and tenant; how many were leased."""
        due = await records.claim_collections(
            self._pool, limit=self._batch_size, lease_seconds=self._lease_seconds
        )
        inactive = [d.row for d in due if d.mandate_status != "active"]
        if inactive:
            await self._fail_unsent(inactive)
        sendable = [d for d in due if d.mandate_status == "active"]
        groups = _grouped(
            sendable, key=lambda d: (d.row.provider, d.row.compliance_region, d.row.tenant_id)
        )
        for (name, _, _), group in groups.items():
            provider = self._providers.get(name)
            if provider is None:
                log.error("collection_provider_not_configured", provider=name)
                continue
            for chunk in _chunks(group, provider_batch_size_max):
                await self._run(provider, chunk)
        return len(due)

    async def _fail_unsent(self, rows: Sequence[CollectionRow]) -> None:
        async with self._pool.acquire() as connection, connection.transaction():
            failed = await records.fail_unsent(
                connection,
                rows,
                code="mandate_inactive",
                description="the mandate was no longer active when the collection was due",
            )
            events = []
            for row in rows:
                if row.id in failed:
                    changed = msgspec.structs.replace(
                        row,
                        status="failed",
                        failure_code="mandate_inactive",
                        failure_description="the mandate was no longer active",
                    )
                    events.append(_collection_event(changed, "collection.failed"))
            await records.insert_events(connection, events)

    async def _run(self, provider: MandateProvider, due: Sequence[DueCollection]) -> None:
        requests = [self._collection_request(item) for item in due]
        try:
            run = await provider.collect(requests)
        except ProviderUnavailable:
            log.warning("collection_provider_unavailable", provider=provider.name.value)
            await records.release_collections(
                self._pool, [d.row for d in due], after_seconds=retry_after_seconds
            )
            return
        ensure(len(run.answers) == len(due), "a provider answers every collection of a run")
        final = [
            _answer_notification(
                provider=provider.name.value,
                target=_collection_ref(item.row),
                kind="collection",
                outcome=answer.outcome,
                provider_reference=answer.provider_reference,
                reason_code=answer.reason_code,
                amount_minor=item.row.amount_minor,
                currency=item.row.currency,
            )
            for item, answer in zip(due, run.answers, strict=True)
            if answer.outcome != "pending"
        ]
        # The message names every debtor and their account: it is stored sealed for its run.
        run_id = uuid.uuid4()
        sealed = (
            None
            if run.message is None
            else seal_run_message(self._secret_box, run.message, run_id=run_id)
        )
        async with self._pool.acquire() as connection, connection.transaction():
            await records.record_run(
                connection,
                run_id=run_id,
                rows=[item.row for item in due],
                references=[answer.provider_reference for answer in run.answers],
                message_type=_message_type(provider.name.value, run.message),
                message_sealed=sealed,
            )
            await records.insert_matched_notifications(connection, final)

    def _collection_request(self, item: DueCollection) -> CollectionRequest:
        row = item.row
        ensure(item.mandate_provider_reference is not None, "an active mandate has a reference")
        ensure(row.sequence_type in ("first", "recurring"), "a leased collection has a sequence")
        bank_details, holder = open_mandate_details(
            self._secret_box, item.mandate_bank_details_sealed, mandate_id=row.mandate_id
        )
        return CollectionRequest(
            collection_id=row.id.int,
            mandate_id=row.mandate_id.int,
            mandate_provider_reference=item.mandate_provider_reference or "",
            mandate_signed_at=item.mandate_consent_accepted_at,
            currency=row.currency,
            amount_minor=row.amount_minor,
            reference=row.reference,
            end_to_end_id=row.end_to_end_id,
            sequence_type="first" if row.sequence_type == "first" else "recurring",
            bank_details=bank_details,
            account_holder_name=holder,
            collection_date=row.collection_date,
        )

    async def tell_deactivations(self) -> int:
        """Tell providers of mandates deactivated since (one call per mandate: the
        providers' interface has no batch form for it); how many were told."""
        rows = await records.deactivations_to_tell(self._pool, limit=self._batch_size)
        told: list[MandateRow] = []
        for row in rows:
            provider = self._providers.get(row.provider)
            if provider is None or row.provider_reference is None:
                continue
            try:
                await provider.deactivate_mandate(row.provider_reference)
            except ProviderUnavailable:
                log.warning("mandate_deactivation_unavailable", provider=row.provider)
                continue
            told.append(row)
        await records.mark_deactivations_told(self._pool, told)
        return len(told)

    async def rematch(self) -> int:
        """Match again the unmatched notifications of the last hour; how many matched."""
        since = _now() - datetime.timedelta(seconds=rematch_window_seconds)
        rows = await records.unmatched_since(self._pool, since=since, limit=self._batch_size)
        matches: list[tuple[uuid.UUID, ObjectRef]] = []
        for provider, group in _grouped(rows, key=lambda row: row.provider).items():
            found = await records.find_objects(
                self._pool, provider=provider, references=[row.provider_reference for row in group]
            )
            for row in group:
                target = found.get(row.provider_reference)
                if target is not None and target.object_type == row.type.split(".", 1)[0]:
                    matches.append((row.id, target))
        await records.match_notifications(self._pool, matches)
        return len(matches)

    async def expire(self) -> int:
        """Expire mandates pending too long, and SEPA mandates unused for 36 months, each
        with its event; how many."""
        now = _now()
        async with self._pool.acquire() as connection, connection.transaction():
            rows = await records.expire_mandates(
                connection,
                pending_before=now - datetime.timedelta(seconds=self._pending_expiry_seconds),
                unused_before=now - datetime.timedelta(days=sepa_unused_days),
                unused_providers=("sepa_dd",),
                limit=self._batch_size,
            )
            await records.insert_events(
                connection,
                [
                    Event(
                        id=records.event_id(row.id, "mandate.expired"),
                        tenant_id=row.tenant_id,
                        type="mandate.expired",
                        object_id=row.id,
                        payload=payload(mandate_view(row)),
                    )
                    for row in rows
                ],
            )
        return len(rows)


async def run_forever(
    worker: CollectionsWorker, *, idle_seconds: float = idle_seconds_default
) -> None:
    """Run passes until cancelled; sleep only when a pass found nothing to do."""
    while True:
        try:
            worked = await worker.process_due()
        except Exception:
            log.exception("collections_pass_failed")
            worked = 0
        if worked == 0:
            await asyncio.sleep(idle_seconds)


def _message_type(provider: str, message: bytes | None) -> str | None:
    """What a run's message is: a SEPA run's pain.008, or another provider's request (kept
    for the record, not shown as a message)."""
    if message is None:
        return None
    return pain008 if provider == "sepa_dd" else "provider_request"


async def _nothing() -> int:
    return 0


def _now() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.UTC)


def _grouped(items: Sequence[T], *, key: Callable[[T], K]) -> dict[K, list[T]]:
    grouped: dict[K, list[T]] = {}
    for item in items:
        grouped.setdefault(key(item), []).append(item)
    return grouped


def _chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def _mandate_ref(row: MandateRow) -> ObjectRef:
    return ObjectRef(
        object_type="mandate",
        compliance_region=row.compliance_region,
        tenant_id=row.tenant_id,
        object_id=row.id,
    )


def _collection_ref(row: CollectionRow) -> ObjectRef:
    return ObjectRef(
        object_type="collection",
        compliance_region=row.compliance_region,
        tenant_id=row.tenant_id,
        object_id=row.id,
    )


def _answer_notification(
    *,
    provider: str,
    target: ObjectRef,
    kind: str,
    outcome: str,
    provider_reference: str,
    reason_code: str | None,
    amount_minor: int | None,
    currency: str | None,
) -> tuple[NewNotification, ObjectRef]:
    """A provider's final answer in a call's reply, as a notification of Kovra's own: its
    event id derived from the object and the outcome, so a repeated call stores it once."""
    event_id = f"answer:{target.object_id.hex}:{outcome}"
    body = {
        "type": f"{kind}.{outcome}",
        "provider_reference": provider_reference,
        "reason_code": reason_code,
    }
    notification = NewNotification(
        id=notification_uuid(provider, event_id),
        provider=provider,
        event_id=event_id,
        type=f"{kind}.{outcome}",
        provider_reference=provider_reference,
        amount_minor=amount_minor,
        currency=currency,
        reason_code=reason_code,
        synthetic=True,
        body=msgspec.json.encode(body).decode(),
    )
    return notification, target


def _collection_event(row: CollectionRow, event_type: str) -> Event:
    return Event(
        id=records.event_id(row.id, event_type),
        tenant_id=row.tenant_id,
        type=event_type,
        object_id=row.id,
        payload=payload(collection_view(row)),
    )
