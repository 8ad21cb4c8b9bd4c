"""Tenants' funding references: what a tenant's customer writes in a bank transfer so that
the money reaches the tenant's wallet, and how a statement entry's remittance information is
read back to a tenant.

A reference is an ISO 11649 creditor reference of the longest form the standard allows:
`RF`, two check digits, `KV`, and the tenant id in 19 decimal digits, zero-padded (tenant 71:
`RF65KV0000000000000000071`, printed `RF65 KV00 0000 0000 0000 0007 1`). It is derived from
the tenant id, never stored. Everything after `KV` is digits, so its ISO 7064 MOD 97-10
check digits catch every single-digit typo and every swap of two adjacent digits, and a typo
elsewhere (in `RF` or `KV`) makes it no Kovra reference: a typo yields no tenant, never
another one. Its length is fixed, so its end is certain in free text, where a payer may
write more digits right after it. It is read back only when its check digits hold, it is
exactly what `funding_reference` writes, and (the caller's part) the tenant exists.
"""

from __future__ import annotations

from collections.abc import Iterable

from stdnum import iso11649
from stdnum.exceptions import ValidationError
from stdnum.iso7064 import mod_97_10

from ledger.invariants import ensure

namespace = "KV"
# A tenant id is a Postgres bigint: at most 19 digits, which the reference always writes.
tenant_id_digits = 19
tenant_id_max = 2**63 - 1
reference_length = 4 + len(namespace) + tenant_id_digits
# Remittance text read for references, per entry: a statement line carries at most 140
# characters a line, and a few lines.
scanned_text_length_max = 2_000
# What a payer may write between a reference's groups, beside spaces.
_separators_to_spaces = str.maketrans(dict.fromkeys("-.,/:;()", " "))


def funding_reference(tenant_id: int) -> str:
    """The tenant's reference, compact (`RF65KV0000000000000000071`)."""
    ensure(0 < tenant_id <= tenant_id_max, "a tenant id is a positive bigint")
    body = f"{namespace}{tenant_id:0{tenant_id_digits}d}"
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
    digits = compact[4 + len(namespace) :]
    if (
        len(compact) != reference_length
        or compact[4 : 4 + len(namespace)] != namespace
        or not (digits.isascii() and digits.isdigit())
    ):
        return None
    tenant_id = int(digits)
    if not 0 < tenant_id <= tenant_id_max or funding_reference(tenant_id) != compact:
        return None
    return tenant_id


def tenants_in(texts: Iterable[str]) -> set[int]:
    """Every tenant id a funding reference within `texts` names, written compact or in
    groups: the text is split into words at spaces and separators, and from each word that
    starts with `RF`, it and the words after it are joined until they are a reference's
    length. A text may name several tenants; the caller then cannot choose, and does not."""
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
                if len(candidate) >= reference_length:
                    break
            if len(candidate) == reference_length:
                tenant_id = tenant_of(candidate)
                found.update(() if tenant_id is None else (tenant_id,))
    return found
