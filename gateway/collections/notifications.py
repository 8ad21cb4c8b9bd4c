"""The providers' notifications in: verified, then stored once, mapped to their object.

`POST /v1/providers/{provider}/webhooks` carries no tenant credentials: the provider's
signature is the only proof of who sent it, so it is checked before anything is stored (a
bad or missing one is `invalid_signature` and leaves no trace but a log line). A verified
notification is stored once by (provider, event id): a replay stores nothing and is
answered like the first. The intake maps it to the mandate or collection whose
`provider_reference` it carries; one naming no known object is stored as unmatched with an
operations exception, never guessed. Nothing is applied here: the worker applies stored
notifications (`gateway.collections.applying`), so the provider gets its answer at once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence

import asyncpg
import msgspec
import structlog

from gateway.collections import records
from gateway.collections.errors import InvalidSignature, UnknownProvider
from gateway.operations.records import NewException
from gateway.operations.records import record as record_exceptions
from rails.collections.notifications import NotificationRejected, verify_notification
from rails.collections.provider import MandateProvider, ProviderName, ProviderNotification

log = structlog.get_logger("kovra.collections.notifications")
# A notification is a few hundred bytes; anything past this is not one.
notification_bytes_max = 64 * 1024
# How far a notification's signed timestamp may be from now (Standard Webhooks' default).
tolerance_seconds_default = 300


class Intake:
    """Verifies and stores the providers' notifications."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        providers: Mapping[str, MandateProvider],
        secrets: Mapping[str, Sequence[str]],
        tolerance_seconds: int = tolerance_seconds_default,
    ) -> None:
        self._pool = pool
        self._providers = providers
        self._secrets = secrets
        self._tolerance_seconds = tolerance_seconds

    def knows(self, provider: str) -> bool:
        return provider in self._providers

    async def receive(self, provider: str, *, headers: Mapping[str, str], body: bytes) -> bool:
        """Verify and store one notification; whether it was stored now (False: a replay).
        `UnknownProvider` for a provider this deployment has not; `InvalidSignature` when
        the signature does not verify, and then nothing is stored."""
        if provider not in self._providers:
            raise UnknownProvider(f"no mandate provider {provider[:32]!r}")
        try:
            notification = verify_notification(
                ProviderName(provider),
                headers=headers,
                body=body,
                secrets=list(self._secrets.get(provider, ())),
                now_seconds=int(time.time()),
                tolerance_seconds=self._tolerance_seconds,
            )
        except NotificationRejected as error:
            log.warning("provider_notification_rejected", provider=provider, reason=str(error))
            raise InvalidSignature("the notification's signature does not verify") from None
        stored, _ = await store(self._pool, notification, body=body.decode(errors="replace"))
        return stored


async def store(
    pool: asyncpg.Pool, notification: ProviderNotification, *, body: str, synthetic: bool = False
) -> tuple[bool, uuid.UUID]:
    """Store a verified notification (or one Kovra derived: a provider's answer, a lookup)
    unless stored before, mapped to its object, or unmatched with an operations exception;
    whether it was stored now, and its id."""
    provider = notification.provider.value
    notification_id = notification_uuid(provider, notification.event_id)
    kind = notification.type.split(".", 1)[0]
    async with pool.acquire() as connection, connection.transaction():
        found = await records.find_objects(
            connection, provider=provider, references=[notification.provider_reference]
        )
        target = found.get(notification.provider_reference)
        if target is not None and target.object_type != kind:
            target = None  # A collection's notification never applies to a mandate.
        stored = await records.insert_notification(
            connection,
            records.NewNotification(
                id=notification_id,
                provider=provider,
                event_id=notification.event_id,
                type=notification.type,
                provider_reference=notification.provider_reference,
                amount_minor=notification.amount_minor,
                currency=notification.currency,
                reason_code=notification.reason_code,
                synthetic=synthetic,
                body=body,
            ),
            target,
        )
        if stored and target is None:
            await record_exceptions(connection, [unknown_reference(notification, notification_id)])
    if stored and target is None:
        log.warning(
            "provider_notification_unmatched",
            provider=provider,
            event_id=notification.event_id,
            provider_reference=notification.provider_reference,
        )
    return stored, notification_id


def notification_uuid(provider: str, event_id: str) -> uuid.UUID:
    """The row id of a provider's event: the same event always gets the same one."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"kovra:provider-notification:{provider}:{event_id}")


def unknown_reference(
    notification: ProviderNotification, notification_id: uuid.UUID
) -> NewException:
    return NewException(
        id=uuid.uuid4(),
        kind="unknown_provider_reference",
        dedupe_key=f"provider_notification:{notification_id}",
        currency=notification.currency,
        amount_minor=notification.amount_minor,
        object_type="notification",
        object_id=notification_id,
        details={
            "provider": notification.provider.value,
            "event_id": notification.event_id,
            "type": notification.type,
            "provider_reference": notification.provider_reference,
        },
    )


def synthetic_body(notification: ProviderNotification) -> str:
    """What Kovra stores as the body of a notification it derived itself."""
    return msgspec.json.encode(notification).decode()
