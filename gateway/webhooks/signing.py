"""Standard Webhooks signatures: what a receiver needs to trust a delivery.

The scheme (https://www.standardwebhooks.com): the signed content is
`{webhook-id}.{webhook-timestamp}.{body}`, signed with HMAC-SHA256 under the secret's bytes
(the base64 after `whsec_`), sent as `webhook-signature: v1,<base64>`. Several signatures are
separated by spaces: during a secret rotation both the new and the old secret sign, so a
receiver that has either one verifies. It is a few lines of hmac, kept here rather than
pulling in a client library for them; the tests verify with the `standardwebhooks` package.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

secret_prefix = "whsec_"  # noqa: S105 - the public prefix, not a secret.
secret_bytes = 32
signature_version = "v1"


def new_secret() -> str:
    return secret_prefix + base64.b64encode(secrets.token_bytes(secret_bytes)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret; a malformed secret is a programmer error."""
    if not secret.startswith(secret_prefix):
        raise ValueError("a webhook secret starts with whsec_")
    try:
        key = base64.b64decode(secret.removeprefix(secret_prefix), validate=True)
    except binascii.Error:
        raise ValueError("a webhook secret is base64 after whsec_") from None
    if not key:
        raise ValueError("a webhook secret is not empty")
    return key


def sign(*, secret: str, message_id: str, timestamp_seconds: int, body: bytes) -> str:
    """One `v1,<base64>` signature of the body under one secret."""
    signed = b"%s.%d.%s" % (message_id.encode(), timestamp_seconds, body)
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return f"{signature_version},{base64.b64encode(digest).decode()}"


def signature_header(
    *, secrets_active: list[str], message_id: str, timestamp_seconds: int, body: bytes
) -> str:
    """The `webhook-signature` value: one signature per active secret, newest first."""
    if not secrets_active:
        raise ValueError("at least one secret signs a webhook")
    return " ".join(
        sign(
            secret=secret,
            message_id=message_id,
            timestamp_seconds=timestamp_seconds,
            body=body,
        )
        for secret in secrets_active
    )
