"""Tenants' funding references: what a tenant's customer writes in a bank transfer so that
the money reaches the tenant's wallet, and how a statement entry's remittance information is
read back to a tenant.

A reference is an ISO 11649 creditor reference: `RF`, two check digits, then `KV`, two digits
giving the length of the tenant id, and the tenant id in decimal (`RF62KV0271` for tenant 71,
printed `RF62 KV02 71`). It is derived from the tenant id, never stored. Everything after
`KV` is digits, so its ISO 7064 MOD 97-10 check digits catch every single-digit typo and
every swap of two adjacent digits, and a typo elsewhere (in `RF` or `KV`) makes it no Kovra
reference: a typo yields no tenant, never another one. The length makes a reference's end
certain in free text, where a payer may write more digits right after it. It is read back
only when its check digits hold, it is exactly what `funding_reference` writes, and (the
caller's part) the tenant exists.
"""

from __future__ import annotations

from collections.abc import Iterable

from stdnum import iso11649
from stdnum.exceptions import ValidationError
from stdnum.iso7064 import mod_97_10

from ledger.invariants import ensure

namespace = "KV"
_length_digits = 2
# `RF`, check digits, `KV`, the length: what a reference starts with before the tenant id.
_head_length = 4 + len(namespace) + _length_digits
# ISO 11649 allows 21 characters after the check digits: `KV`, the length and 17 digits.
tenant_id_max = 10**17 - 1
# Remittance text read for references, per entry: a statement line carries at most 140
# characters a line, and a few lines.
scanned_text_length_max = 2_000
# What a payer may write between a reference's groups, beside spaces.
_separators_to_spaces = str.maketrans(dict.fromkeys("-.,/:;()", " "))


def funding_reference(tenant_id: int) -> str:
    """The tenant's reference, compact (`RF62KV0271`)."""
    ensure(0 < tenant_id <= tenant_id_max, "a tenant id within what a reference can carry")
    digits = str(tenant_id)
    body = f"{namespace}{len(digits):02d}{digits}"
    check_digits = mod_97_10.calc_check_digits(body + "RF")
    return f"RF{check_digits}{body}"


def printed(reference: str) -> str:
    """The reference in groups of four, as a payer reads and types it (`RF55 KV1Z`)."""
    return str(iso11649.format(reference))


def tenant_of(text: str) -> int | None:
    """The tenant id a reference names, or None: not an ISO 11649 reference, check digits
    that do not hold, or not exactly what `funding_reference` writes."""
    try:
        compact = str(iso11649.validate(text))
    except ValidationError:
        return None
    digits = compact[_head_length:]
    if not compact[4:].startswith(namespace) or not (digits.isascii() and digits.isdigit()):
        return None
    tenant_id = int(digits)
    if not 0 < tenant_id <= tenant_id_max or funding_reference(tenant_id) != compact:
        return None
    return tenant_id


def _expected_length(head: str) -> int | None:
    """A reference's whole length, from its head (`RFccKVnn`), or None if it is none."""
    length = head[4 + len(namespace) : _head_length]
    if head[4 : 4 + len(namespace)] != namespace or not (length.isascii() and length.isdigit()):
        return None
    return _head_length + int(length)


def tenants_in(texts: Iterable[str]) -> set[int]:
    """Every tenant id a funding reference within `texts` names, written compact or in
    groups: the text is split into words at spaces and separators, and from each word that
    starts with `RF`, it and the words after it are joined until they are as long as the
    reference says it is. A text may name several tenants; the caller then cannot choose,
    and does not."""
    found: set[int] = set()
    budget = scanned_text_length_max
    for text in texts:
        words = text[:budget].upper().translate(_separators_to_spaces).split()
        budget -= min(len(text), budget)
        for start, word in enumerate(words):
            if not word.startswith("RF"):
                continue
            candidate = ""
            for following in words[start:]:
                candidate += following
                if len(candidate) < _head_length:
                    continue
                expected = _expected_length(candidate)
                if expected is not None and len(candidate) == expected:
                    tenant_id = tenant_of(candidate)
                    found.update(() if tenant_id is None else (tenant_id,))
                if expected is None or len(candidate) >= expected:
                    break
    return found
