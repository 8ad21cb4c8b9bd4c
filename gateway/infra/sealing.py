"""Secrets and personal data Kovra must read back, sealed at rest: tenants' webhook signing
secrets, their customers' names, emails and external ids, mandates' bank details and the
collection runs' messages (which name debtors and their accounts); and the keyed blind
indexes that find a customer by email or external id without storing either in the clear.

API keys are stored as hashes, since Kovra only compares them. A webhook signing secret has
to be read back to sign every delivery, so it is stored encrypted instead: AES-256-GCM
under a key derived from the operator's `KOVRA_SECRETS_KEY`, with the row it belongs to as
associated data. A database dump or backup alone then cannot forge a tenant's webhooks,
and a sealed value copied onto another endpoint does not open.

Sealed text is `sealed:v1:<key id>:<base64url(nonce, ciphertext and tag)>`. The key id (the
first 16 hex digits of the derived key's SHA-256) names the key that sealed it, so a value
sealed under a key that is not configured is reported as exactly that. Keys rotate:
`KOVRA_SECRETS_KEYS_PREVIOUS` still opens what older keys sealed, and `kovra secrets reseal`
seals everything again under the current key. Values stored before sealing existed (a
plain `whsec_` secret) still open, and reseal seals them.

A blind index is HMAC-SHA256 of a normalised value under a key derived from the same key
material with its own HKDF `info`, so it reveals neither the value nor the sealing key, and
equal values have equal indexes (that is the point: an equality lookup). Values are indexed
under the current key; a lookup tries every configured key, so a rotation does not hide
rows indexed before it, and `kovra secrets reseal` recomputes every index under the current
key (a row records the key id its indexes were computed under).

In the sandbox without `KOVRA_SECRETS_KEY`, the key is a random one kept in
`KOVRA_DATA_DIR/secrets.key` (created once, mode 0600), shared by every process that shares
the data directory. Production requires the variable.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ledger.invariants import ensure

sealed_prefix = "sealed:v1:"
legacy_prefix = "whsec_"
key_material_length_min = 32
key_file_name = "secrets.key"
nonce_bytes = 12
key_bytes = 32
key_id_hex_digits = 16
plaintext_bytes_max = 1_024
# The most a sealed document holds: a collection run's message (a SEPA pain.008, a Bacs or
# PayWithAccount run record) of up to 1,000 collections, the most a run carries (the
# collections worker's claim and a provider call are both bounded to 1,000). The largest
# run a scheme builds, every field at its limit, takes under 2 KiB a collection (a SEPA
# transaction in a payment block of its own: about 1.4 KiB; a PayWithAccount request with
# a 200-character name and a 140-character reference in 4-byte characters: about 1.9 KiB);
# 4 KiB a collection leaves twice that, and `tests/gateway/collections/test_sealed.py`
# builds those runs to prove they fit.
document_bytes_max = 4 * 1_024 * 1_024
key_file_reads_max = 100
key_file_read_interval_seconds = 0.01
_derivation_info = b"kovra.sealing.v1"
_index_derivation_info = b"kovra.blind-index.v1"
index_bytes = 32


class SecretUnreadable(Exception):
    """A stored secret does not open: sealed under a key that is not configured, altered,
    or sealed for another row."""


def derive_key(material: str, *, info: bytes = _derivation_info) -> bytes:
    """The AES-256 key (or, with the blind index's `info`, the HMAC key) for operator-supplied
    key material (at least 32 characters)."""
    ensure(len(material) >= key_material_length_min, "secrets key material is long enough")
    return HKDF(algorithm=hashes.SHA256(), length=key_bytes, salt=None, info=info).derive(
        material.encode()
    )


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:key_id_hex_digits]


class SecretBox:
    """Seals with the current key; opens with the current key or any previous one."""

    def __init__(self, current: str, *, previous: Sequence[str] = ()) -> None:
        self._current = derive_key(current)
        self._current_id = key_id(self._current)
        self._keys = {key_id(key): key for key in map(derive_key, previous)}
        self._keys[self._current_id] = self._current

    @property
    def current_key_id(self) -> str:
        return self._current_id

    def seal(self, plaintext: str, *, bound_to: bytes, bytes_max: int = plaintext_bytes_max) -> str:
        """`plaintext` sealed for the row `bound_to` (e.g. the endpoint id's bytes): at most
        `bytes_max` bytes of UTF-8, a secret's bound unless the caller seals a document."""
        ensure(0 < bytes_max <= document_bytes_max, "a seal's bound is at most a document's")
        data = plaintext.encode()
        ensure(0 < len(data) <= bytes_max, "a sealed value is bounded")
        nonce = secrets.token_bytes(nonce_bytes)
        sealed = nonce + AESGCM(self._current).encrypt(nonce, data, bound_to)
        text = base64.urlsafe_b64encode(sealed).decode()
        return f"{sealed_prefix}{self._current_id}:{text}"

    def open(self, stored: str, *, bound_to: bytes) -> str:
        """The plaintext of a sealed value (or of a value stored before sealing)."""
        if stored.startswith(legacy_prefix):
            return stored
        if not stored.startswith(sealed_prefix):
            raise SecretUnreadable("the stored secret is neither sealed nor a webhook secret")
        sealing_key_id, _, text = stored.removeprefix(sealed_prefix).partition(":")
        key = self._keys.get(sealing_key_id)
        if key is None:
            raise SecretUnreadable(
                f"sealed under key {sealing_key_id}, which is neither KOVRA_SECRETS_KEY nor "
                "in KOVRA_SECRETS_KEYS_PREVIOUS"
            )
        try:
            sealed = base64.urlsafe_b64decode(text)
            plaintext = AESGCM(key).decrypt(sealed[:nonce_bytes], sealed[nonce_bytes:], bound_to)
        except (binascii.Error, ValueError, InvalidTag):
            raise SecretUnreadable(
                f"the secret sealed under key {sealing_key_id} does not open: altered, or "
                "sealed for another row"
            ) from None
        return plaintext.decode()

    def is_current(self, stored: str) -> bool:
        """Whether `stored` is sealed under the current key (reseal skips it)."""
        return stored.startswith(f"{sealed_prefix}{self._current_id}:")


class BlindIndex:
    """Keyed equality indexes of personal data: computed under the current key, looked up
    under every configured key. Each `field` (`email`, `external_id`) is its own domain, so
    equal text in two fields has unrelated indexes. Callers normalise values first."""

    def __init__(self, current: str, *, previous: Sequence[str] = ()) -> None:
        derive = functools.partial(derive_key, info=_index_derivation_info)
        self._current = derive(current)
        self._current_id = key_id(self._current)
        # Current first; a previous key equal to the current one is not tried twice.
        keys = {self._current_id: self._current}
        keys.update((key_id(key), key) for key in map(derive, previous))
        self._keys = tuple(keys.values())

    @property
    def current_key_id(self) -> str:
        return self._current_id

    def index(self, field: str, value: str) -> bytes:
        """The index of `value` in `field` under the current key."""
        return _index(self._current, field, value)

    def candidates(self, field: str, value: str) -> list[bytes]:
        """The index of `value` in `field` under every configured key, current first: what a
        row indexed before the last rotation (and not yet resealed) may hold."""
        return [_index(key, field, value) for key in self._keys]


def _index(key: bytes, field: str, value: str) -> bytes:
    ensure(field.isidentifier(), "an index field is a plain name")
    message = field.encode() + b"\x00" + value.encode()
    digest = hmac.digest(key, message, "sha256")
    ensure(len(digest) == index_bytes, "an index is a SHA-256 HMAC")
    return digest


def sandbox_key_material(data_dir: Path) -> str:
    """The sandbox's key material from `data_dir`, made on first use. Several processes
    starting at once agree: only one creates the file, the others read it."""
    path = data_dir / key_file_name
    data_dir.mkdir(parents=True, exist_ok=True)
    material = secrets.token_hex(key_bytes)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key_file(path)
    with os.fdopen(descriptor, "w") as file:
        file.write(material)
    return material


def _read_key_file(path: Path) -> str:
    # A process that lost the race may read before the winner wrote: wait for the content.
    for _ in range(key_file_reads_max):
        material = path.read_text().strip()
        if len(material) >= key_material_length_min:
            return material
        time.sleep(key_file_read_interval_seconds)
    raise SecretUnreadable(f"{path} holds no key of at least {key_material_length_min} characters")
