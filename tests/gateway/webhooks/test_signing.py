"""Our signatures are Standard Webhooks signatures: the `standardwebhooks` package verifies
them, refuses a changed body, id or timestamp, and during a rotation verifies with either
the old or the new secret."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gateway.webhooks.signing import new_secret, secret_key, signature_header


def headers(message_id: str, timestamp: int, signature: str) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


@given(body=st.binary(max_size=2_000).map(lambda raw: raw.hex().encode()))
def test_the_standard_library_verifies_what_we_sign(body: bytes) -> None:
    secret = new_secret()
    now = int(time.time())
    signature = signature_header(
        secrets_active=[secret], message_id="msg_1", timestamp_seconds=now, body=body
    )
    Webhook(secret).verify(body, headers("msg_1", now, signature), json_parse=False)


def test_a_changed_body_id_or_timestamp_does_not_verify() -> None:
    secret = new_secret()
    now = int(time.time())
    body = b'{"type":"transfer.completed"}'
    signature = signature_header(
        secrets_active=[secret], message_id="msg_1", timestamp_seconds=now, body=body
    )
    hook = Webhook(secret)
    for bad_body, message_id, timestamp in (
        (body + b" ", "msg_1", now),
        (body, "msg_2", now),
        (body, "msg_1", now - 1),
    ):
        with pytest.raises(WebhookVerificationError):
            hook.verify(bad_body, headers(message_id, timestamp, signature), json_parse=False)


def test_during_a_rotation_either_secret_verifies_and_a_third_does_not() -> None:
    old, new = new_secret(), new_secret()
    now = int(time.time())
    body = b"{}"
    signature = signature_header(
        secrets_active=[new, old], message_id="msg_9", timestamp_seconds=now, body=body
    )
    assert len(signature.split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(body, headers("msg_9", now, signature), json_parse=False)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers("msg_9", now, signature), json_parse=False)


def test_secrets_are_whsec_with_32_random_bytes_and_malformed_ones_are_refused() -> None:
    first, second = new_secret(), new_secret()
    assert first.startswith("whsec_")
    assert first != second
    assert len(secret_key(first)) == 32
    for malformed in ("abc", "whsec_", "whsec_!!!"):
        with pytest.raises(ValueError, match="secret"):
            secret_key(malformed)
    with pytest.raises(ValueError, match="at least one secret"):
        signature_header(secrets_active=[], message_id="m", timestamp_seconds=1, body=b"")
