"""Our signatures are Standard Webhooks signatures: for UTF-8 JSON bodies with text in any
script (hypothesis), the `standardwebhooks` package verifies them and so does the scheme
built by hand here (HMAC-SHA256 over `id.timestamp.body`, base64), byte for byte; a changed
body, id or timestamp does not verify, and during a rotation either the old or the new
secret verifies."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import msgspec
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


# Any Unicode scalar value (surrogates cannot be encoded), so bodies carry multi-byte UTF-8.
unicode_text = st.text(st.characters(codec="utf-8"), max_size=60)
non_ascii_character = st.characters(min_codepoint=0x80, codec="utf-8")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | unicode_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(unicode_text, children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def event_bodies(draw: st.DrawFn) -> bytes:
    """An event's JSON as delivered: UTF-8, with at least one character outside ASCII."""
    payload = {
        "type": "transfer.completed",
        "reference": draw(non_ascii_character) + draw(unicode_text),
        "data": draw(json_values),
    }
    return msgspec.json.encode(payload)


def signed_by_hand(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The scheme as the Standard Webhooks spec writes it, independently of our module."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    content = message_id.encode() + b"." + str(timestamp).encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


@given(body=event_bodies(), message_id=st.from_regex(r"msg_[0-9A-Za-z]{1,26}", fullmatch=True))
def test_the_standard_library_verifies_what_we_sign(body: bytes, message_id: str) -> None:
    assert not body.isascii()  # The property is about bytes that ASCII alone would not catch.
    secret = new_secret()
    now = int(time.time())
    signature = signature_header(
        secrets_active=[secret], message_id=message_id, timestamp_seconds=now, body=body
    )
    assert signature == signed_by_hand(secret, message_id, now, body)
    parsed = Webhook(secret).verify(body, headers(message_id, now, signature))
    assert parsed == msgspec.json.decode(body)


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
