"""Tenants' funding references: what a tenant's customer writes in a bank transfer so that
the money reaches the tenant's wallet, and how a statement entry's remittance information is
read back to a tenant.

A reference is an ISO 11649 creditor reference, `RF` + two check digits + `KV` + the tenant
id in base 36 (e.g. `RF55KV1Z` for tenant 71): derived from the tenant id, never stored. Its
ISO 7064 MOD 97-10 check digits catch every single-character typo and every transposition
of two adjacent characters, so a typo yields no tenant rather than another one. It is read
back only when its check digits hold, its body is exactly what `funding_reference` writes,
and (the caller's part) the tenant exists.
"""

from __future__ import annotations

from collections.abc import Iterable

from stdnum import iso11649
from stdnum.exceptions import ValidationError
from stdnum.iso7064 import mod_97_10

from ledger.invariants import ensure

namespace = "KV"
_digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# ISO 11649 references are 5 to 25 characters; `tenant_id_max` in base 36 fits.
reference_length_min = 5
reference_length_max = 25
tenant_id_max = 2**63 - 1
# Remittance text read for references, per entry: a statement line carries at most 140
# characters a line, and a few lines.
scanned_text_length_max = 2_000


def _base36(value: int) -> str:
    digits = []
    while value:
        value, digit = divmod(value, 36)
        digits.append(_digits[digit])
    return "".join(reversed(digits)) or "0"


def funding_reference(tenant_id: int) -> str:
    """The tenant's reference, compact (`RF55KV1Z`)."""
    ensure(0 < tenant_id <= tenant_id_max, "a tenant id is a positive bigint")
    body = namespace + _base36(tenant_id)
    check_digits = mod_97_10.calc_check_digits(body + "RF")
    return f"RF{check_digits}{body}"


def printed(reference: str) -> str:
    """The reference in groups of four, as a payer reads and types it (`RF55 KV1Z`)."""
    return str(iso11649.format(reference))


def tenant_of(text: str) -> int | None:
    """The tenant id a reference names, or None: not an ISO 11649 reference, check digits
    that do not hold, or a body `funding_reference` would not write."""
    try:
        compact = str(iso11649.validate(text))
    except ValidationError:
        return None
    body = compact[4:]
    if not body.startswith(namespace) or len(body) <= len(namespace):
        return None
    number = body[len(namespace) :]
    if not all(character in _digits for character in number):
        return None
    tenant_id = int(number, 36)
    if not 0 < tenant_id <= tenant_id_max or funding_reference(tenant_id) != compact:
        return None
    return tenant_id


def tenants_in(texts: Iterable[str]) -> set[int]:
    """Every tenant id a funding reference within `texts` names, however the payer spaced
    it: separators are dropped, then each `RF` starts candidates of every length a reference
    can have. A text may name several (then the caller cannot choose, and does not)."""
    found: set[int] = set()
    budget = scanned_text_length_max
    for text in texts:
        compact = str(iso11649.compact(text[:budget]))
        budget -= min(len(text), budget)
        start = compact.find("RF")
        while start != -1:
            for length in range(reference_length_min, reference_length_max + 1):
                candidate = compact[start : start + length]
                if len(candidate) < length:
                    break
                tenant_id = tenant_of(candidate)
                if tenant_id is not None:
                    found.add(tenant_id)
            start = compact.find("RF", start + 1)
    return found
