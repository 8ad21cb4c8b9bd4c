"""Normalisation reduces a name to the same tokens however it is written.

Accents, other scripts (Cyrillic, Greek, Chinese, Korean), case, punctuation, the Arabic
article, honorifics and company suffixes disappear; token order stops mattering in the
sorted and phonetic keys (any permutation of the words, drawn by hypothesis, with accents,
Cyrillic, Greek, honorifics and suffixes among them); transliteration variants share a
phonetic form; and, for any input, tokens are lower-case ASCII letters and digits, and
normalising twice changes nothing.
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


# Name words as payments write them: Latin with accents, Cyrillic, Greek; honorifics and
# company suffixes among them, since dropping those must not depend on where they stand.
name_words = st.one_of(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzéüñçøåš'-", min_size=1, max_size=10),
    st.text(alphabet="абвгдежзийклмнопрстуфхцчшщыэюя", min_size=1, max_size=8),
    st.text(alphabet="αβγδεζηθικλμνξοπρστυφχψω", min_size=1, max_size=8),
    st.sampled_from(["Mohammed", "AL-QAHTANI", "O'Brien", "Mr.", "Ltd", "GmbH", "Sheikh", "de"]),
)


@given(data=st.data(), words=st.lists(name_words, min_size=1, max_size=7))
def test_any_word_order_gives_the_same_sorted_and_phonetic_keys(
    data: st.DataObject, words: list[str]
) -> None:
    """Every permutation of the words, not only their reversal: the tokens of a name are
    the same multiset in any order, so both order-free keys are equal."""
    permuted = data.draw(st.permutations(words), label="permuted")
    written, reordered = name_tokens(" ".join(words)), name_tokens(" ".join(permuted))
    assert sorted(reordered) == sorted(written)
    assert sorted_key(reordered) == sorted_key(written)
    assert phonetic_key(reordered) == phonetic_key(written)


@given(data=st.data(), tokens=st.lists(st.from_regex("[a-z0-9]{1,9}", fullmatch=True), max_size=8))
def test_the_keys_are_the_same_for_any_permutation_of_tokens(
    data: st.DataObject, tokens: list[str]
) -> None:
    permuted = tuple(data.draw(st.permutations(tokens), label="permuted"))
    assert sorted_key(permuted) == sorted_key(tuple(tokens))
    assert phonetic_key(permuted) == phonetic_key(tuple(tokens))
