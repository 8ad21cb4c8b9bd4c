"""Name normalisation: reduce a name to the tokens that identify its bearer.

Sanctions lists and payment instructions spell the same name differently: another script
(Cyrillic, Arabic, Chinese), accents kept or dropped, "LAST, First" or "First Last", with or
without "Mr" or "Sheikh", "Ltd" or "LLC". Fuzzy matching only works once those differences
are gone, so both sides of every comparison go through `name_tokens`: transliterate to
ASCII, casefold, drop punctuation, the Arabic article, honorifics and company suffixes.
`sorted_key` makes token order irrelevant and `phonetic_token` folds common transliteration
differences (Mohammed / Muhammad).

Arabic and Persian script lose their short vowels in transliteration (محمد gives "mhmd"), so
names in those scripts are screened poorly: payment messages carry them in Latin letters.
"""

from __future__ import annotations

import re

from anyascii import anyascii

honorifics = frozenset(
    {
        "mr", "mrs", "ms", "miss", "mx", "dr", "doctor", "prof", "professor", "sir", "dame",
        "lord", "lady", "rev", "reverend", "mme", "mlle", "herr", "frau", "sr", "sra", "srta",
        "senor", "senora", "sheikh", "sheik", "shaikh", "shaykh", "cheikh", "haji", "hajji",
        "hadji", "hajj", "alhaj", "alhajji", "sayyid", "sayed", "syed", "mullah", "mulla",
        "colonel", "brigadier", "lieutenant",
    }
)  # fmt: skip

company_suffixes = frozenset(
    {
        "ltd", "limited", "llc", "inc", "incorporated", "corp", "corporation", "co", "company",
        "plc", "llp", "lp", "gmbh", "mbh", "ag", "kg", "sa", "sas", "sarl", "sac", "sal",
        "sae", "saog", "srl", "sro", "spa", "sl", "bv", "nv", "as", "ab", "oy", "ad", "ood",
        "eood", "doo", "lda", "ltda", "cia", "jsc", "ojsc", "pjsc", "cjsc", "oao", "ooo",
        "zao", "pao", "tov", "pt", "tbk", "cv", "kk", "pty", "pte", "pvt", "bhd", "sdn", "fze",
        "fzco", "fzc", "fzllc",
    }
)  # fmt: skip

# Arabic's definite article, written "Al-Qahtani", "Al Qahtani" or "Alqahtani" and as often
# left out: dropped, so that the first two and "Qahtani" give the same token.
articles = frozenset({"al", "el", "ul"})

# Scripts written without spaces between the syllables of a name. A Chinese name is a
# one-syllable surname then a given name romanised as one word (周建国 is "Zhou Jianguo");
# a Korean name is romanised syllable by syllable (김정은 is "Kim Jong Un").
_han_run = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_hangul_syllable = re.compile(r"[\uac00-\ud7af]")

# Apostrophes and dots vanish ("O'Brien", "S.A."); every other non-alphanumeric separates.
_vanishing = re.compile(r"['`.\u2018\u2019\u02bc\u00b4]")
_separators = re.compile(r"[^0-9a-z]+")

# Transliteration variants folded by `phonetic_token`, longest first.
_phonetic_rewrites = (
    ("dzh", "j"), ("tch", "c"), ("sch", "s"), ("zh", "j"), ("dj", "j"), ("ph", "f"),
    ("kh", "h"), ("gh", "g"), ("ck", "k"), ("c", "k"), ("q", "k"), ("x", "ks"), ("z", "s"),
    ("w", "v"),
)  # fmt: skip
_vowels = re.compile(r"[aeiouy]+")
_inner_h = re.compile(r"(?<=.)h")
_repeats = re.compile(r"(.)\1+")


def _romanised_han(match: re.Match[str]) -> str:
    surname, given = match.group()[0], match.group()[1:]
    return f" {anyascii(surname)} {anyascii(given).lower()} "


def _romanised_hangul(match: re.Match[str]) -> str:
    return f" {anyascii(match.group())} "


def transliterate(text: str) -> str:
    """`text` in ASCII: accents dropped, other scripts romanised, Chinese and Korean spaced."""
    if text.isascii():
        return text
    spaced = _hangul_syllable.sub(_romanised_hangul, _han_run.sub(_romanised_han, text))
    return anyascii(spaced)


def simplify(text: str) -> str:
    """Lower-case ASCII letters and digits separated by single spaces."""
    lowered = transliterate(text).lower()
    return _separators.sub(" ", _vanishing.sub("", lowered)).strip()


def is_noise(token: str) -> bool:
    """Whether `token` is an honorific, a company suffix or an article."""
    return token in honorifics or token in company_suffixes or token in articles


def drop_noise(tokens: list[str]) -> list[str]:
    """`tokens` without honorifics, company suffixes and articles, unless nothing is left."""
    return [token for token in tokens if not is_noise(token)] or tokens


def name_tokens(name: str) -> tuple[str, ...]:
    """The identifying tokens of `name`, in the order written."""
    return tuple(drop_noise(simplify(name).split()))


def sorted_key(tokens: tuple[str, ...]) -> str:
    """`tokens` in alphabetical order, space-separated: the same for any word order."""
    return " ".join(sorted(tokens))


def phonetic_token(token: str) -> str:
    """A rough sound-alike form: transliteration digraphs folded, vowels merged, repeats cut.

    "mohammed", "muhammad" and "mohamad" all give "mamad"; "yevgeny" and "evgeni" "avgana".
    """
    folded = token
    for written, sound in _phonetic_rewrites:
        folded = folded.replace(written, sound)
    folded = _inner_h.sub("", folded)
    folded = _vowels.sub("a", folded)
    return _repeats.sub(r"\1", folded)


def phonetic_key(tokens: tuple[str, ...]) -> str:
    """The phonetic forms of `tokens`, sorted and space-separated."""
    return " ".join(sorted(phonetic_token(token) for token in tokens))
