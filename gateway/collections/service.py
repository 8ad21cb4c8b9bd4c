"""Mandates and collections as a tenant sees them: created (validated, sealed, audited, an
event in the same transaction), read, listed, deactivated; and a late collection looked up
at its provider.

Nothing here talks to a provider on the request path except a lookup: mandates and
collections are submitted by the worker (`gateway.collections.worker`) in batches.
"""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Mapping
from typing import Protocol

import asyncpg
import structlog
from redis.asyncio import Redis

from compliance.audit.outbox import outbox_insert_one, outbox_row
from gateway.collections import records, wire
from gateway.collections.applying import Applier
from gateway.collections.errors import (
    CollectionUnknown,
    InvalidCollectionDate,
    InvalidConsent,
    MandateInactive,
    MandateNotDeactivatable,
    MandateUnknown,
    ProviderCurrencyMismatch,
    ProviderNotConfigured,
)
from gateway.collections.notifications import store, synthetic_body
from gateway.collections.records import CollectionRow, Event, MandateRow
from gateway.collections.sealed import (
    open_mandate_details,
    open_run_message,
    seal_mandate_details,
)
from gateway.collections.views import (
    collection_view,
    customer_prefix,
    mandate_view,
    mask_bank_details,
    payload,
)
from gateway.http.ids import decode_id, encode_id
from gateway.http.paging import Page, PageRequest, Position
from gateway.http.ratelimit import Principal
from gateway.infra.sealing import SecretBox
from ledger.currencies import CurrencyRegistry
from ledger.invariants import ensure
from rails.collections.provider import (
    MandateProvider,
    ProviderName,
    ProviderNotification,
    ProviderUnavailable,
)

log = structlog.get_logger("kovra.collections")
# How far ahead a collection may be scheduled, and how far in the future a consent's time
# may be (clocks differ a little; a consent signed tomorrow is a mistake).
collection_date_days_max = 365
consent_clock_skew_seconds = 300
# Lookups of late collections: at most one per collection per interval, and a bound per
# provider per second, so a client polling cannot turn into load on the provider.
lookup_interval_ms_default = 60_000
lookups_per_provider_per_second_max = 10
lookup_key_prefix = "kovra:collection-lookup"
final_collection_statuses = ("succeeded", "failed", "returned")


class NamedCustomer(Protocol):
    """A customer as a mandate needs it: the account holder's name."""

    @property
    def name(self) -> str: ...


class CustomerLookup(Protocol):
    """What this domain needs of customers (`gateway.customers`): one by id, or
    `not_found`."""

    async def get(self, *, tenant_id: int, customer_id: int) -> NamedCustomer: ...


def end_to_end_id(collection_id: int) -> str:
    """A collection's end-to-end id, unique since its id is: `COL` and the id's 26 Crockford
    digits, 29 characters of SEPA's restricted character set (no underscore)."""
    return "COL" + encode_id("col", collection_id).removeprefix("col_")


class Collections:
    """Mandates and collections of every tenant, through one process's connections."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        redis: Redis,
        secret_box: SecretBox,
        currencies: CurrencyRegistry,
        providers: Mapping[str, MandateProvider],
        customers: CustomerLookup,
        applier: Applier,
        lookup_after_seconds: int,
        lookup_interval_ms: int = lookup_interval_ms_default,
    ) -> None:
        self._pool = pool
        self._redis = redis
        self._secret_box = secret_box
        self._currencies = currencies
        self._providers = providers
        self._customers = customers
        self._applier = applier
        self._lookup_after_seconds = lookup_after_seconds
        self._lookup_interval_ms = lookup_interval_ms

    def provider(self, name: str) -> MandateProvider:
        """The configured provider `name`; `provider_not_configured` when this deployment
        has no transport to it."""
        provider = self._providers.get(name)
        if provider is None:
            raise ProviderNotConfigured(
                f"this deployment has no transport to provider {name!r}", field="provider"
            )
        return provider

    def open_bank_details(self, row_id: uuid.UUID, sealed: str) -> tuple[dict[str, str], str]:
        """A mandate's bank details and account holder's name, unsealed."""
        return open_mandate_details(self._secret_box, sealed, mandate_id=row_id)

    async def create_mandate(
        self, principal: Principal, *, mandate_id: int, body: wire.MandateCreate
    ) -> wire.Mandate:
        """A new mandate, `pending` until its provider answers: the provider's currency and
        bank-detail rules checked, the customer found, the bank details sealed, and in one
        transaction the row, its `mandate.pending` event and the audit record of the
        customer's consent. A retried request answers the mandate it created."""
        provider = self.provider(body.provider)
        self._currencies.get(body.currency)  # Unknown or not enabled: a 422 naming it.
        if body.currency != provider.currency:
            raise ProviderCurrencyMismatch(
                f"{body.provider} collects {provider.currency}, not {body.currency}",
                field="currency",
            )
        bank_details = provider.validate_bank_details(body.bank_details)
        _check_consent_time(body.consent.accepted_at)
        customer_id = decode_id(customer_prefix, body.customer_id)
        customer = await self._customers.get(tenant_id=principal.tenant_id, customer_id=customer_id)
        await self._applier.ledger.open_wallet(
            tenant_id=principal.tenant_id, currency_code=body.currency
        )
        row_id = uuid.UUID(int=mandate_id)
        sealed = seal_mandate_details(
            self._secret_box, bank_details, customer.name, mandate_id=row_id
        )
        new = records.NewMandate(
            compliance_region=principal.compliance_region,
            id=row_id,
            tenant_id=principal.tenant_id,
            customer_id=uuid.UUID(int=customer_id),
            provider=body.provider,
            currency=body.currency,
            reference=body.reference,
            bank_details_sealed=sealed,
            bank_details_masked=mask_bank_details(bank_details),
            consent_accepted_at=body.consent.accepted_at,
            consent_ip=body.consent.ip,
            consent_user_agent=body.consent.user_agent,
        )
        async with self._pool.acquire() as connection, connection.transaction():
            row = await records.insert_mandate(connection, new)
            if row is not None:
                await records.insert_events(connection, [_mandate_event(row, "mandate.pending")])
                await connection.execute(
                    outbox_insert_one, *_mandate_audit(row, principal, "mandate.create")
                )
        if row is None:
            row = await self._mandate(principal, row_id)
        return mandate_view(row)

    async def _mandate(self, principal: Principal, mandate_id: uuid.UUID) -> MandateRow:
        return await self._mandate_of(
            region=principal.compliance_region, tenant_id=principal.tenant_id, mandate_id=mandate_id
        )

    async def _mandate_of(
        self, *, region: str, tenant_id: int, mandate_id: uuid.UUID
    ) -> MandateRow:
        row = await records.get_mandate(
            self._pool, region=region, tenant_id=tenant_id, mandate_id=mandate_id
        )
        if row is None:
            raise MandateUnknown(f"no mandate {encode_id('mdt', mandate_id.int)}")
        return row

    async def read_mandate(self, principal: Principal, mandate_id: int) -> wire.Mandate:
        return mandate_view(await self._mandate(principal, uuid.UUID(int=mandate_id)))

    async def list_mandates(
        self,
        principal: Principal,
        *,
        customer_id: int | None,
        status: str | None,
        page: PageRequest[Position],
    ) -> Page[wire.Mandate]:
        rows = await records.list_mandates(
            self._pool,
            tenant_id=principal.tenant_id,
            customer_id=None if customer_id is None else uuid.UUID(int=customer_id),
            status=status,
            page=page,
        )
        return rows.map(mandate_view)

    async def deactivate(self, principal: Principal, mandate_id: int) -> wire.Mandate:
        """Deactivate a pending or active mandate (again: the same answer), audited, with
        its event; the worker tells the provider. Later collections are refused."""
        row = await self._mandate(principal, uuid.UUID(int=mandate_id))
        if row.status == "deactivated":
            return mandate_view(row)
        if row.status not in ("pending", "active"):
            raise MandateNotDeactivatable(f"the mandate is {row.status}; nothing to deactivate")
        async with self._pool.acquire() as connection, connection.transaction():
            moved = await records.deactivate_mandate(
                connection,
                region=row.compliance_region,
                mandate_id=row.id,
                from_statuses=("pending", "active"),
            )
            if moved is not None:
                await records.insert_events(
                    connection, [_mandate_event(moved, "mandate.deactivated")]
                )
                await connection.execute(
                    outbox_insert_one, *_mandate_audit(moved, principal, "mandate.deactivate")
                )
        if moved is None:  # Moved meanwhile (failed, expired, or deactivated): say how.
            return await self.deactivate(principal, mandate_id)
        return mandate_view(moved)

    async def collect(
        self,
        principal: Principal,
        *,
        mandate_id: int,
        collection_id: int,
        body: wire.CollectionCreate,
    ) -> wire.Collection:
        """A new collection under an active mandate, `pending` until its run and its
        provider's notification. A retried request answers the collection it created."""
        return collection_view(
            await self.collect_for(
                tenant_id=principal.tenant_id,
                compliance_region=principal.compliance_region,
                mandate_id=mandate_id,
                collection_id=collection_id,
                amount_minor=body.amount,
                reference=body.reference,
                collection_date=body.collection_date,
            )
        )

    async def collect_for(
        self,
        *,
        tenant_id: int,
        compliance_region: str,
        mandate_id: int,
        collection_id: int,
        amount_minor: int,
        reference: str,
        collection_date: datetime.date | None = None,
    ) -> CollectionRow:
        """`collect` for a tenant without a request (an orchestration run's collection):
        the row and its `collection.pending` event in one transaction; the collection
        stored before under this id when there is one (a repeat, whatever the mandate's
        state is now); `mandate_inactive` under a mandate that is not active."""
        mandate = await self._mandate_of(
            region=compliance_region, tenant_id=tenant_id, mandate_id=uuid.UUID(int=mandate_id)
        )
        row_id = uuid.UUID(int=collection_id)
        existing = await records.get_collection(
            self._pool,
            region=mandate.compliance_region,
            tenant_id=tenant_id,
            collection_id=row_id,
        )
        if existing is not None:
            return existing
        if mandate.status != "active":
            raise MandateInactive(f"the mandate is {mandate.status}; collections need it active")
        new = records.NewCollection(
            compliance_region=mandate.compliance_region,
            id=row_id,
            tenant_id=tenant_id,
            mandate_id=mandate.id,
            provider=mandate.provider,
            currency=mandate.currency,
            amount_minor=amount_minor,
            reference=reference,
            end_to_end_id=end_to_end_id(collection_id),
            collection_date=_collection_date(collection_date),
        )
        async with self._pool.acquire() as connection, connection.transaction():
            row = await records.insert_collection(connection, new)
            if row is not None:
                await records.insert_events(
                    connection, [_collection_event(row, "collection.pending")]
                )
        if row is None:
            row = await records.get_collection(
                self._pool,
                region=mandate.compliance_region,
                tenant_id=tenant_id,
                collection_id=row_id,
            )
        ensure(row is not None, "a collection not inserted was inserted before")
        assert row is not None
        return row

    async def _collection(self, principal: Principal, collection_id: uuid.UUID) -> CollectionRow:
        row = await records.get_collection(
            self._pool,
            region=principal.compliance_region,
            tenant_id=principal.tenant_id,
            collection_id=collection_id,
        )
        if row is None:
            raise CollectionUnknown(f"no collection {encode_id('col', collection_id.int)}")
        return row

    async def read_collection(self, principal: Principal, collection_id: int) -> wire.Collection:
        """The collection; one still pending at its provider past `lookup_after_seconds` is
        looked up there first (bounded in rate), and a final answer applied."""
        row = await self._collection(principal, uuid.UUID(int=collection_id))
        if self._is_late(row) and await self._may_look_up(row) and await self._look_up(row):
            row = await self._collection(principal, row.id)
        return collection_view(row)

    def _is_late(self, row: CollectionRow) -> bool:
        if row.status != "pending" or row.provider_reference is None or row.submitted_at is None:
            return False
        age = datetime.datetime.now(tz=datetime.UTC) - row.submitted_at
        return age.total_seconds() >= self._lookup_after_seconds

    async def _may_look_up(self, row: CollectionRow) -> bool:
        """One lookup per collection per interval (`SET NX PX`), and a bound per provider
        per second (a counter that expires with its second)."""
        key = f"{lookup_key_prefix}:{row.id.hex}"
        if not await self._redis.set(key, b"1", nx=True, px=self._lookup_interval_ms):
            return False
        second = int(time.time())
        counter = f"{lookup_key_prefix}:provider:{row.provider}:{second}"
        async with self._redis.pipeline(transaction=True) as pipeline:
            pipeline.incr(counter)
            pipeline.expire(counter, 2)
            count, _ = await pipeline.execute()
        return int(count) <= lookups_per_provider_per_second_max

    async def _look_up(self, row: CollectionRow) -> bool:
        """Ask the provider; a final answer is stored as a notification (its event id
        derived from the collection and the status, so asking twice stores it once) and
        applied through the same path as the provider's own. Whether it was applied."""
        provider = self._providers.get(row.provider)
        if provider is None or row.provider_reference is None:
            return False
        try:
            lookup = await provider.lookup_collection(row.provider_reference)
        except ProviderUnavailable:
            log.warning("collection_lookup_unavailable", collection_id=str(row.id))
            return False
        except LookupError:
            # The provider knows no such collection: nothing to apply, and nothing guessed.
            log.error("collection_unknown_at_provider", collection_id=str(row.id))
            return False
        if lookup.status not in final_collection_statuses:
            return False
        notification = ProviderNotification(
            provider=ProviderName(row.provider),
            event_id=f"lookup:{row.id.hex}:{lookup.status}",
            type=f"collection.{lookup.status}",  # type: ignore[arg-type]
            provider_reference=row.provider_reference,
            amount_minor=row.amount_minor,
            currency=row.currency,
            reason_code=lookup.reason_code,
        )
        _, notification_id = await store(
            self._pool, notification, body=synthetic_body(notification), synthetic=True
        )
        return await self._applier.apply(ids=[notification_id]) > 0

    async def list_collections(
        self,
        principal: Principal,
        *,
        mandate_id: int | None,
        status: str | None,
        page: PageRequest[Position],
    ) -> Page[wire.Collection]:
        rows = await records.list_collections(
            self._pool,
            tenant_id=principal.tenant_id,
            mandate_id=None if mandate_id is None else uuid.UUID(int=mandate_id),
            status=status,
            page=page,
        )
        return rows.map(collection_view)

    async def messages(
        self, principal: Principal, collection_id: int
    ) -> wire.CollectionMessageList:
        """The message of the collection's run (a SEPA run's pain.008); none for others."""
        row = await self._collection(principal, uuid.UUID(int=collection_id))
        found = await records.run_messages(self._pool, row)
        return wire.CollectionMessageList(
            data=[
                wire.CollectionMessage(
                    type=record["message_type"] or "",
                    run_id=str(record["id"]),
                    xml=open_run_message(self._secret_box, record["message"], run_id=record["id"]),
                    created_at=record["created_at"],
                )
                for record in found
            ]
        )


def _check_consent_time(accepted_at: datetime.datetime) -> None:
    latest = datetime.datetime.now(tz=datetime.UTC) + datetime.timedelta(
        seconds=consent_clock_skew_seconds
    )
    if accepted_at > latest:
        raise InvalidConsent(
            "the consent cannot be accepted in the future", field="consent.accepted_at"
        )


def _collection_date(given: datetime.date | None) -> datetime.date:
    today = datetime.datetime.now(tz=datetime.UTC).date()
    if given is None:
        return today
    if not today <= given <= today + datetime.timedelta(days=collection_date_days_max):
        raise InvalidCollectionDate(
            f"a collection date is today ({today}) or within {collection_date_days_max} days",
            field="collection_date",
        )
    return given


def _mandate_event(row: MandateRow, event_type: str) -> Event:
    return Event(
        id=records.event_id(row.id, event_type),
        tenant_id=row.tenant_id,
        type=event_type,
        object_id=row.id,
        payload=payload(mandate_view(row)),
    )


def _collection_event(row: CollectionRow, event_type: str) -> Event:
    return Event(
        id=records.event_id(row.id, event_type),
        tenant_id=row.tenant_id,
        type=event_type,
        object_id=row.id,
        payload=payload(collection_view(row)),
    )


def _mandate_audit(
    row: MandateRow, principal: Principal, action: str
) -> tuple[uuid.UUID, str, str, str, str]:
    """The audit record of a tenant's act on a mandate; creation carries the consent."""
    details: dict[str, object] = {"tenant_id": row.tenant_id, "provider": row.provider}
    if action == "mandate.create":
        details |= {
            "customer_id": str(row.customer_id),
            "currency": row.currency,
            "reference": row.reference,
            "consent": {
                "accepted_at": row.consent_accepted_at.isoformat(),
                "ip": row.consent_ip,
                "user_agent": row.consent_user_agent,
            },
        }
    return outbox_row(
        record_id=records.event_id(row.id, f"audit.{action}"),
        actor=f"tenant:{principal.tenant_id}:key:{principal.key_id}",
        action=action,
        target=f"mandate:{row.id}",
        details=details,
    )
