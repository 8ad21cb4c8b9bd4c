"""The mandate providers' notifications, on the wire (SPEC §10).

A provider tells Kovra what became of a mandate or a collection by POSTing a notification to
`/v1/providers/{provider}/webhooks`, signed as Standard Webhooks sign (the `standardwebhooks`
package computes every signature, so Kovra has one HMAC scheme, the standard's):

- headers `webhook-id` (the event id, the same on a redelivery), `webhook-timestamp` (Unix
  seconds) and `webhook-signature` (`v1,<base64 HMAC-SHA256>` over `id.timestamp.body`, with
  the key a `whsec_` secret carries; several signatures, space-separated, during a rotation);
- a JSON body `{"id", "type", "data": {"reference", "amount", "currency", "reason_code"}}`:
  `id` equal to `webhook-id`, `type` one of `mandate.active`, `mandate.failed`,
  `collection.succeeded`, `collection.failed`, `collection.returned`, `reference` the
  object's provider reference, `amount` in minor units (null on a mandate), `reason_code` on
  a failure or a return (null otherwise).

`verify_notification` checks the headers, the timestamp (within `tolerance_seconds` of now,
5 minutes by default, against replays of old captures) and the signature against every
accepted secret BEFORE decoding the body, then decodes the body strictly and checks its id is
the header's. Any failure raises `NotificationRejected` with a `reason`; nothing is parsed
into domain objects until all of it holds.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hmac
from collections.abc import Mapping, Sequence
from typing import Annotated, Literal

import msgspec
from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook

from rails.collections.provider import (
    NotificationType,
    ProviderName,
    ProviderNotification,
    provider_reference_length_max,
    reason_code_length_max,
)

tolerance_seconds_default = 300
body_bytes_max = 16 * 1024
event_id_length_max = 128
secret_prefix = "whsec_"  # noqa: S105 - the public prefix of a secret, not a secret.
secret_key_bytes_min = 24
signature_count_max = 16  # More signatures than any rotation needs: refused as malformed.
amount_minor_max = 10**18
header_names = ("webhook-id", "webhook-timestamp", "webhook-signature")

RejectionReason = Literal[
    "missing_headers",
    "malformed_headers",
    "stale_timestamp",
    "bad_signature",
    "malformed_body",
    "id_mismatch",
]
_failure_types = frozenset({"mandate.failed", "collection.failed", "collection.returned"})


class NotificationRejected(Exception):
    """A notification that is not proven to come from the provider, or is not well formed."""

    def __init__(self, reason: RejectionReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: RejectionReason = reason
        self.detail = detail


class NotificationData(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    reference: Annotated[str, msgspec.Meta(min_length=1, max_length=provider_reference_length_max)]
    amount: Annotated[int, msgspec.Meta(ge=0, le=amount_minor_max)] | None
    currency: Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")] | None
    reason_code: (
        Annotated[str, msgspec.Meta(min_length=1, max_length=reason_code_length_max)] | None
    )


class NotificationBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A notification's body, exactly as SPEC §10 fixes it."""

    id: Annotated[str, msgspec.Meta(min_length=1, max_length=event_id_length_max)]
    type: NotificationType
    data: NotificationData


def webhook_for(secret: str) -> Webhook:
    """The `standardwebhooks` signer of a `whsec_` secret; ValueError for a malformed one
    (call it when configuration is read, so a bad secret stops the process at start)."""
    if not secret.startswith(secret_prefix):
        raise ValueError("a provider notification secret starts with whsec_")
    try:
        key = base64.b64decode(secret.removeprefix(secret_prefix), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a provider notification secret is base64 after whsec_") from None
    if len(key) < secret_key_bytes_min:
        raise ValueError(
            f"a provider notification secret holds at least {secret_key_bytes_min} bytes"
        )
    try:
        return Webhook(key)
    except EmptyWebhookSecretError:
        raise ValueError("a provider notification secret is not empty") from None


def encode_body(body: NotificationBody) -> bytes:
    return msgspec.json.encode(body)


def sign_body(
    *, secret: str, message_id: str, timestamp_seconds: int, body: bytes
) -> dict[str, str]:
    """The Standard Webhooks headers (and content type) for sending `body` as `message_id`."""
    moment = datetime.datetime.fromtimestamp(timestamp_seconds, tz=datetime.UTC)
    signature = webhook_for(secret).sign(msg_id=message_id, timestamp=moment, data=body)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp_seconds),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


def sign_notification(
    *, secret: str, body: NotificationBody, timestamp_seconds: int
) -> tuple[dict[str, str], bytes]:
    """The headers and body bytes a provider sends for `body`."""
    encoded = encode_body(body)
    headers = sign_body(
        secret=secret, message_id=body.id, timestamp_seconds=timestamp_seconds, body=encoded
    )
    return headers, encoded


def _headers(headers: Mapping[str, str]) -> tuple[str, int, list[str]]:
    lowered = {name.lower(): value for name, value in headers.items()}
    values = [lowered.get(name, "").strip() for name in header_names]
    if not all(values):
        missing = [name for name, value in zip(header_names, values, strict=True) if not value]
        raise NotificationRejected("missing_headers", f"missing {', '.join(missing)}")
    message_id, timestamp, signature = values
    if len(message_id) > event_id_length_max:
        raise NotificationRejected("malformed_headers", "webhook-id is too long")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise NotificationRejected("malformed_headers", "webhook-timestamp is not Unix seconds")
    signatures = signature.split()
    if len(signatures) > signature_count_max:
        raise NotificationRejected("malformed_headers", "too many signatures")
    return message_id, int(timestamp), signatures


def _signed_by_one_of(
    secrets: Sequence[str],
    *,
    message_id: str,
    timestamp_seconds: int,
    body: bytes,
    signatures: list[str],
) -> bool:
    moment = datetime.datetime.fromtimestamp(timestamp_seconds, tz=datetime.UTC)
    for secret in secrets:
        expected = webhook_for(secret).sign(msg_id=message_id, timestamp=moment, data=body)
        for given in signatures:
            if hmac.compare_digest(expected.encode(), given.encode()):
                return True
    return False


def verify_notification(
    provider: ProviderName,
    *,
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[str],
    now_seconds: float,
    tolerance_seconds: int = tolerance_seconds_default,
) -> ProviderNotification:
    """The notification `body` carries, once its headers, timestamp and signature hold;
    `NotificationRejected` otherwise. `secrets` are the accepted `whsec_` secrets (more than
    one while a secret is rotated)."""
    if not secrets:
        raise ValueError("verifying a notification needs at least one secret")
    message_id, timestamp_seconds, signatures = _headers(headers)
    if abs(now_seconds - timestamp_seconds) > tolerance_seconds:
        raise NotificationRejected(
            "stale_timestamp",
            f"signed at {timestamp_seconds}, more than {tolerance_seconds} s away",
        )
    if len(body) > body_bytes_max:
        raise NotificationRejected("malformed_body", f"the body exceeds {body_bytes_max} bytes")
    if not _signed_by_one_of(
        secrets,
        message_id=message_id,
        timestamp_seconds=timestamp_seconds,
        body=body,
        signatures=signatures,
    ):
        raise NotificationRejected("bad_signature", "no signature matches an accepted secret")
    return _decoded(provider, message_id=message_id, body=body)


def _decoded(provider: ProviderName, *, message_id: str, body: bytes) -> ProviderNotification:
    try:
        decoded = msgspec.json.decode(body, type=NotificationBody)
    except msgspec.DecodeError as error:
        raise NotificationRejected("malformed_body", str(error)) from None
    if decoded.id != message_id:
        raise NotificationRejected("id_mismatch", "the body's id is not the webhook-id header")
    data = decoded.data
    if (decoded.type in _failure_types) != (data.reason_code is not None):
        raise NotificationRejected(
            "malformed_body", f"a {decoded.type} notification carries a reason code iff it fails"
        )
    return ProviderNotification(
        provider=provider,
        event_id=decoded.id,
        type=decoded.type,
        provider_reference=data.reference,
        amount_minor=data.amount,
        currency=data.currency,
        reason_code=data.reason_code,
    )
