"""Labelled variants of listed names, generated deterministically, for measuring recall.

Each variant is how a sanctioned name might reach a payment: tokens reordered, case changed,
accents added, written in Cyrillic, respelt the way transliterations differ, misspelt by one
or two letters, with a title or with a company suffix added or removed, or several of these
at once. `variants_of` returns (kind, text) pairs; the kind lets a failure say which kind
of variation the matcher misses.
"""

from __future__ import annotations

import random

from compliance.sanctions.lists import SanctionedParty
from compliance.sanctions.normalise import company_suffixes, name_tokens

letters = "abcdefghijklmnopqrstuvwxyz"
titles = ("Mr", "Mrs", "Dr", "Prof.", "Sheikh")
suffixes = ("Ltd", "LLC", "GmbH", "Inc.", "Limited")

# Latin to Cyrillic as an English speaker's name is written in Russian, longest first.
cyrillic = (
    ("shch", "щ"), ("sh", "ш"), ("ch", "ч"), ("kh", "х"), ("zh", "ж"),  # noqa: RUF001
    ("ts", "ц"), ("ya", "я"), ("yu", "ю"), ("a", "а"), ("b", "б"), ("v", "в"),  # noqa: RUF001
    ("g", "г"), ("d", "д"), ("e", "е"), ("z", "з"), ("i", "и"), ("y", "й"),  # noqa: RUF001
    ("k", "к"), ("l", "л"), ("m", "м"), ("n", "н"), ("o", "о"), ("p", "п"),  # noqa: RUF001
    ("r", "р"), ("s", "с"), ("t", "т"), ("u", "у"), ("f", "ф"), ("h", "х"),  # noqa: RUF001
    ("c", "к"), ("j", "дж"), ("w", "в"), ("x", "кс"), ("q", "к"),
)  # fmt: skip
accented = {"a": "á", "e": "é", "i": "í", "o": "ö", "u": "ü", "n": "ñ", "c": "ç"}
# How transliterations of one name differ (Mohammed / Muhammad, Yusuf / Yousef).
respellings = (
    ("MOHAMMED", "MUHAMMAD"), ("MUHAMMAD", "MOHAMED"), ("OU", "U"), ("U", "OU"), ("Y", "I"),
    ("I", "Y"), ("KH", "H"), ("EE", "I"), ("J", "DJ"), ("SH", "SCH"), ("Q", "K"), ("PH", "F"),
    ("AI", "AY"),
)  # fmt: skip


def natural_order(name: str) -> str:
    """ "LAST, First" as "First LAST"; other names unchanged."""
    surname, comma, given = name.partition(",")
    return f"{given.strip()} {surname.strip()}" if comma else name


def misspelt(rng: random.Random, text: str) -> str:
    """`text` with one letter substituted, deleted, inserted or swapped with the next."""
    position = rng.choice([i for i, character in enumerate(text) if character.isalpha()])
    letter = rng.choice(letters.upper() if text[position].isupper() else letters)
    operation = rng.choice("sdit")
    if operation == "s":
        return text[:position] + letter + text[position + 1 :]
    if operation == "i":
        return text[:position] + letter + text[position:]
    if operation == "t" and text[position + 1 : position + 2].isalpha():
        return text[:position] + text[position + 1] + text[position] + text[position + 2 :]
    return text[:position] + text[position + 1 :]


def in_cyrillic(text: str) -> str:
    lowered, position = text.lower(), 0
    written: list[str] = []
    while position < len(lowered):
        latin, letter = next(
            ((latin, letter) for latin, letter in cyrillic if lowered.startswith(latin, position)),
            (lowered[position], lowered[position]),
        )
        written.append(letter)
        position += len(latin)
    return "".join(written)


def with_accents(rng: random.Random, text: str) -> str:
    lowered = text.title()
    positions = [i for i, character in enumerate(lowered) if character in accented]
    for position in rng.sample(positions, min(2, len(positions))):
        lowered = lowered[:position] + accented[lowered[position]] + lowered[position + 1 :]
    return lowered


def respelt(rng: random.Random, text: str) -> str | None:
    upper = text.upper()
    applicable = [rule for rule in respellings if rule[0] in upper]
    if not applicable:
        return None
    written, spoken = rng.choice(applicable)
    return upper.replace(written, spoken, 1)


def reordered(rng: random.Random, text: str) -> str | None:
    tokens = text.split()
    if len(tokens) < 2:
        return None
    shuffled = tokens[:]
    while shuffled == tokens:
        rng.shuffle(shuffled)
    return " ".join(shuffled)


def suffix_changed(rng: random.Random, party: SanctionedParty, text: str) -> str | None:
    if party.kind != "entity":
        return None
    words = text.split()
    kept = [w for w in words if w.lower().strip(".,()") not in company_suffixes]
    if kept != words:
        return " ".join(kept)
    return f"{text} {rng.choice(suffixes)}"


def variants_of(rng: random.Random, party: SanctionedParty) -> list[tuple[str, str]]:
    """(kind, text) variants of `party`'s primary name; kinds that do not apply are left out."""
    text = natural_order(party.name)
    individual = party.kind in ("individual", "unknown")
    candidates: list[tuple[str, str | None]] = [
        ("reordered", reordered(rng, text)),
        ("case", rng.choice([text.lower(), text.title(), text.upper()])),
        ("accents", with_accents(rng, text)),
        ("cyrillic", in_cyrillic(text) if individual else None),
        ("respelt", respelt(rng, text)),
        ("one_typo", misspelt(rng, text)),
        ("two_typos", misspelt(rng, misspelt(rng, text))),
        ("title", f"{rng.choice(titles)} {text.title()}" if individual else None),
        ("suffix", suffix_changed(rng, party, text)),
        ("combined", misspelt(rng, (reordered(rng, text) or text).lower())),
    ]
    return [(kind, variant) for kind, variant in candidates if variant and variant != party.name]


def screenable(party: SanctionedParty) -> bool:
    """Whether fuzzy matching applies: a person or entity named by two tokens or more.

    Single-token names match only exactly, by design, and names under eight characters lose
    too much to the short-name penalty for a misspelling to still reach a review.
    """
    tokens = name_tokens(party.name)
    return (
        party.kind in ("individual", "entity", "unknown")
        and len(tokens) >= 2
        and len(" ".join(tokens)) >= 8
    )
