"""Normalisation reduces a name to the same tokens however it is written.

Accents, other scripts (Cyrillic, Greek, Chinese, Korean), case, punctuation, the Arabic
article, honorifics and company suffixes disappear; token order stops mattering in the
sorted key; transliteration variants share a phonetic form; and, for any input, tokens are
lower-case ASCII letters and digits, and normalising twice changes nothing.
"""

from __future__ import annotations

import re

import hypothesis.strategies as st
import pytest
from hypothesis import given

from compliance.sanctions.normalise import (
    company_suffixes,
    honorifics,
    name_tokens,
    phonetic_key,
    phonetic_token,
    simplify,
    sorted_key,
    transliterate,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("José Núñez", "Jose Nunez"),
        ("Müller Straße", "Muller Strasse"),
        ("Дмитрий Орловский", "Dmitriy Orlovskiy"),
        ("Αλέξανδρος", "Alexandros"),
        ("plain ascii", "plain ascii"),
    ],
)
def test_transliteration_maps_accents_and_scripts_to_latin(text: str, expected: str) -> None:
    assert transliterate(text) == expected


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("周建国", ("zhou", "jianguo")),
        ("王芳", ("wang", "fang")),
        ("김정은", ("gim", "jeong", "eun")),
    ],
)
def test_chinese_splits_surname_from_given_name_and_korean_splits_syllables(
    text: str, tokens: tuple[str, ...]
) -> None:
    assert name_tokens(text) == tokens


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("O'Brien", "obrien"),
        ("S.A. de C.V.", "sa de cv"),
        ("AL-HUSAYN, Mashhur", "al husayn mashhur"),
        ("  Smith   &  Sons (UK) ", "smith sons uk"),
        ("\u2019Abd-al-\u2018Aziz", "abd al aziz"),
    ],
)
def test_simplify_casefolds_and_drops_punctuation(text: str, expected: str) -> None:
    assert simplify(text) == expected


@pytest.mark.parametrize(
    ("name", "tokens"),
    [
        ("Mr. John Smith", ("john", "smith")),
        ("Sheikh Shakeel AHMED", ("shakeel", "ahmed")),
        ("Prof. Dr. Clara Hartmann", ("clara", "hartmann")),
        ("ANGLO-CARIBBEAN CO., LTD.", ("anglo", "caribbean")),
        ("Nordwind Maschinenbau GmbH", ("nordwind", "maschinenbau")),
        ("PT Sinar Jaya Abadi Tbk", ("sinar", "jaya", "abadi")),
        ("OOO Volga Trans", ("volga", "trans")),
        ("AL-QAHTANI, Farouq", ("qahtani", "farouq")),
        ("Company Limited", ("company", "limited")),
    ],
)
def test_honorifics_company_suffixes_and_articles_are_dropped(
    name: str, tokens: tuple[str, ...]
) -> None:
    assert name_tokens(name) == tokens


def test_noise_lists_hold_the_usual_words() -> None:
    assert {"mr", "mrs", "ms", "dr", "prof", "sir", "sheikh", "haji"} <= honorifics
    assert {"ltd", "llc", "inc", "corp", "gmbh", "ag", "sa", "plc", "jsc", "ooo"} <= (
        company_suffixes
    )


def test_the_sorted_key_ignores_order_case_and_punctuation() -> None:
    keys = {sorted_key(name_tokens(n)) for n in ("KUJUNDZIC, Predrag", "predrag kujundzic")}
    assert keys == {"kujundzic predrag"}


@pytest.mark.parametrize(
    "group",
    [
        ("mohammed", "muhammad", "mohamad", "muhamed"),
        ("yevgeny", "evgeni", "yevgeniy"),
        ("carbajal", "karbadzhal"),
        ("jannati", "dzhannati"),
        ("ahmad", "akhmad"),
        ("milosevic", "milosevik"),
        ("philip", "filip"),
    ],
)
def test_transliteration_variants_share_a_phonetic_form(group: tuple[str, ...]) -> None:
    assert len({phonetic_token(token) for token in group}) == 1


@pytest.mark.parametrize(
    ("token", "form"),
    [("smith", "smat"), ("schmidt", "smadt"), ("hassan", "hasan"), ("ali", "ala"), ("wu", "va")],
)
def test_the_phonetic_form_folds_vowels_digraphs_and_repeats(token: str, form: str) -> None:
    assert phonetic_token(token) == form


def test_the_phonetic_key_is_order_independent() -> None:
    assert phonetic_key(("muhammad", "ali")) == phonetic_key(("aly", "mohammed"))


@given(st.text(max_size=60))
def test_tokens_are_lower_case_ascii_and_normalising_twice_changes_nothing(text: str) -> None:
    tokens = name_tokens(text)
    assert all(re.fullmatch("[0-9a-z]+", token) for token in tokens)
    assert name_tokens(" ".join(tokens)) == tokens


@given(st.lists(st.sampled_from(["ali", "hassan", "predrag", "smith", "wu"]), max_size=5))
def test_the_sorted_key_is_the_same_for_any_permutation(tokens: list[str]) -> None:
    assert sorted_key(tuple(tokens)) == sorted_key(tuple(reversed(tokens)))
