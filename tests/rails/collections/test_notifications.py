"""Provider notifications on the wire: a signed notification verifies back to what was sent;
the `standardwebhooks` library itself accepts what Kovra signs; any of several secrets
verifies (rotation); and a notification is rejected, with its reason and before its body is
decoded, when a header is missing, the signature is forged or made with another secret, the
timestamp is outside the tolerance, the body is malformed or not what was signed, or the
body's id differs from `webhook-id`."""

from __future__ import annotations

import base64
import os
import time

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook

from rails.collections.notifications import (
    NotificationBody,
    NotificationData,
    NotificationRejected,
    sign_body,
    sign_notification,
    verify_notification,
    webhook_for,
)
from rails.collections.provider import NotificationType, ProviderName

now_seconds = 1_790_000_000


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


secret = new_secret()


def body(
    kind: NotificationType = "collection.returned",
    *,
    identifier: str = "msg_1",
    reason_code: str | None = "AM04",
    amount: int | None = 1234,
) -> NotificationBody:
    data = NotificationData(
        reference="SBX-C-1", amount=amount, currency="EUR", reason_code=reason_code
    )
    return NotificationBody(id=identifier, type=kind, data=data)


def verify(headers: dict[str, str], raw: bytes, *, secrets: list[str] | None = None) -> object:
    return verify_notification(
        ProviderName.SEPA_DD,
        headers=headers,
        body=raw,
        secrets=secrets or [secret],
        now_seconds=now_seconds,
    )


notification_bodies = st.builds(
    lambda kind, identifier, amount, reason: body(
        kind,
        identifier=identifier,
        amount=amount,
        reason_code=reason
        if kind in ("mandate.failed", "collection.failed", "collection.returned")
        else None,
    ),
    st.sampled_from(
        [
            "mandate.active",
            "mandate.failed",
            "collection.succeeded",
            "collection.failed",
            "collection.returned",
        ]
    ),
    st.text(min_size=1, max_size=60).filter(
        lambda s: s.strip() == s and s.isprintable() and s.isascii() and " " not in s
    ),
    st.one_of(st.none(), st.integers(min_value=0, max_value=10**15)),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=8),
)


@given(sent=notification_bodies)
def test_a_signed_notification_verifies_to_what_was_sent(sent: NotificationBody) -> None:
    headers, raw = sign_notification(secret=secret, body=sent, timestamp_seconds=now_seconds)
    received = verify_notification(
        ProviderName.BACS_DD, headers=headers, body=raw, secrets=[secret], now_seconds=now_seconds
    )
    assert received.provider is ProviderName.BACS_DD
    assert received.event_id == sent.id == headers["webhook-id"]
    assert received.type == sent.type
    assert received.provider_reference == sent.data.reference
    assert received.amount_minor == sent.data.amount
    assert received.reason_code == sent.data.reason_code


def test_the_standardwebhooks_library_accepts_what_kovra_signs() -> None:
    headers, raw = sign_notification(secret=secret, body=body(), timestamp_seconds=int(time.time()))
    assert Webhook(secret).verify(raw, headers) == msgspec.to_builtins(body())


def test_any_accepted_secret_verifies_during_a_rotation() -> None:
    old, new = new_secret(), new_secret()
    headers, raw = sign_notification(secret=old, body=body(), timestamp_seconds=now_seconds)
    verify(headers, raw, secrets=[new, old])
    with pytest.raises(NotificationRejected) as raised:
        verify(headers, raw, secrets=[new])
    assert raised.value.reason == "bad_signature"


def rejected(headers: dict[str, str], raw: bytes) -> str:
    with pytest.raises(NotificationRejected) as raised:
        verify(headers, raw)
    return raised.value.reason


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_rejected(missing: str) -> None:
    headers, raw = sign_notification(secret=secret, body=body(), timestamp_seconds=now_seconds)
    del headers[missing]
    assert rejected(headers, raw) == "missing_headers"


def test_headers_are_matched_whatever_their_case() -> None:
    headers, raw = sign_notification(secret=secret, body=body(), timestamp_seconds=now_seconds)
    verify({name.upper(): value for name, value in headers.items()}, raw)


def test_a_forged_signature_is_rejected() -> None:
    headers, raw = sign_notification(secret=secret, body=body(), timestamp_seconds=now_seconds)
    forged = base64.b64encode(os.urandom(32)).decode()
    assert rejected(headers | {"webhook-signature": f"v1,{forged}"}, raw) == "bad_signature"
    other = sign_body(
        secret=new_secret(), message_id="msg_1", timestamp_seconds=now_seconds, body=raw
    )
    assert rejected(other, raw) == "bad_signature"


def test_a_body_changed_after_signing_is_rejected() -> None:
    headers, raw = sign_notification(secret=secret, body=body(), timestamp_seconds=now_seconds)
    assert rejected(headers, raw.replace(b"1234", b"9234")) == "bad_signature"


def test_a_signature_of_another_message_id_is_rejected() -> None:
    headers, raw = sign_notification(secret=secret, body=body(), timestamp_seconds=now_seconds)
    assert rejected(headers | {"webhook-id": "msg_2"}, raw) == "bad_signature"


@pytest.mark.parametrize("offset_seconds", [-301, 301, -86_400])
def test_a_timestamp_outside_the_tolerance_is_rejected(offset_seconds: int) -> None:
    headers, raw = sign_notification(
        secret=secret, body=body(), timestamp_seconds=now_seconds + offset_seconds
    )
    assert rejected(headers, raw) == "stale_timestamp"


@pytest.mark.parametrize("offset_seconds", [-300, 300])
def test_a_timestamp_at_the_tolerance_is_accepted(offset_seconds: int) -> None:
    headers, raw = sign_notification(
        secret=secret, body=body(), timestamp_seconds=now_seconds + offset_seconds
    )
    verify(headers, raw)


def test_a_timestamp_that_is_not_unix_seconds_is_rejected() -> None:
    headers, raw = sign_notification(secret=secret, body=body(), timestamp_seconds=now_seconds)
    assert rejected(headers | {"webhook-timestamp": "yesterday"}, raw) == "malformed_headers"


def test_a_body_id_differing_from_the_webhook_id_is_rejected() -> None:
    raw = msgspec.json.encode(body(identifier="msg_other"))
    headers = sign_body(secret=secret, message_id="msg_1", timestamp_seconds=now_seconds, body=raw)
    assert rejected(headers, raw) == "id_mismatch"


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'{"id": "msg_1", "type": "collection.returned"}',
        b'{"id": "msg_1", "type": "mandate.exploded", "data": {"reference": "r", "amount": null, '
        b'"currency": null, "reason_code": null}}',
        b'{"id": "msg_1", "type": "collection.succeeded", "data": {"reference": "r", '
        b'"amount": 1.5, "currency": "EUR", "reason_code": null}}',
        b'{"id": "msg_1", "type": "collection.succeeded", "data": {"reference": "r", '
        b'"amount": 1, "currency": "EUR", "reason_code": null, "extra": 1}}',
        b'{"id": "msg_1", "type": "collection.failed", "data": {"reference": "r", '
        b'"amount": 1, "currency": "EUR", "reason_code": null}}',
        b'{"id": "msg_1", "type": "collection.succeeded", "data": {"reference": "r", '
        b'"amount": 1, "currency": "EUR", "reason_code": "AM04"}}',
    ],
)
def test_a_malformed_body_is_rejected_after_its_signature_holds(raw: bytes) -> None:
    headers = sign_body(secret=secret, message_id="msg_1", timestamp_seconds=now_seconds, body=raw)
    assert rejected(headers, raw) == "malformed_body"


@pytest.mark.parametrize("malformed", ["abc", "whsec_", "whsec_!!!", "whsec_" + "QUJD"])
def test_malformed_secrets_are_refused(malformed: str) -> None:
    with pytest.raises(ValueError, match="secret"):
        webhook_for(malformed)
