"""The sanctions matcher: every listed name and alias, indexed for fast fuzzy screening.

A payee's name is screened on every payout, inside compliance's 500 ms budget, against lists
of tens of thousands of names. Fuzzy-matching it against every name would cost milliseconds,
so the index keeps **blocking keys** per token (its first three letters, its last three and
its phonetic form) and a query is compared only with the names sharing a key with it:
typically a few hundred of 20,000. A key held by very many names ("pmoh" for Mohammed)
admits a name only if a second token of the query also shares a key with it.

Candidates are then shortlisted with rapidfuzz's ratio (normalised names, tokens sorted
alphabetically, by length and as written) and each shortlisted name is scored by aligning
its tokens with the query's, so token order never matters. Scores run from 0 to 100; the
method of the best one is kept:

- `exact`: the same tokens in any order (100);
- `fuzzy`: the ratio of the aligned names, which absorbs misspellings and transliteration
  differences; every changed token must stay within an edit budget for its length
  (`token_edits_allowed`) or sound the same, and names shorter than `short_name_chars`
  lose `short_name_penalty` per missing character ("Yang Min" is not "Kang Min");
- `phonetic`: every token sounds alike (Mohammed Ali / Muhammad Ali): `phonetic_score`,
  enough for a review, never a block, since sounding alike is weaker than being spelt alike;
- `partial`: every token of the shorter name is in the longer one ("Stanislav Vorobyev" for
  "VOROBYEV, Stanislav Anatolyevich"), `partial_score`: a review, never a block.

`ScreeningThresholds` says what a score means: from `block_at` the payout is blocked, from
`review_at` it goes to review. `screen` returns the hits from `review_at`, best first.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Literal

import msgspec
from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA

from compliance.sanctions.lists import SanctionedParty
from compliance.sanctions.normalise import name_tokens, phonetic_key, phonetic_token, sorted_key
from ledger.invariants import ensure

MatchMethod = Literal["exact", "fuzzy", "phonetic", "partial"]
ScreeningOutcome = Literal["clear", "review", "block"]
_Scored = tuple[int, float, MatchMethod]  # A listed name's number, its score and method.

block_at_default = 92.0
review_at_default = 85.0
score_max = 100.0
hits_max = 10
query_chars_max = 500  # Longer queries are cut: no real name is longer.
query_tokens_max = 12

block_prefix_chars = 3
block_suffix_chars = 3  # Catches a misspelt first letter.
block_suffix_token_chars_min = 5
block_token_chars_min = 2  # Initials are too common to block on.
common_key_names_max = 250  # A key held by more names admits only with a second token.
shortlist_margin = 15.0  # Shortlist from this far below the floor, then align tokens.

fuzzy_chars_min = 6  # Shorter normalised names match only exactly.
short_name_chars = 12
short_name_penalty = 2.0  # Per character below `short_name_chars`.
guard_token_chars_min = 3  # Shorter tokens ("de", "of") may change freely.
phonetic_chars_min = 8
distinctive_sound_chars = 5  # A token whose phonetic form is this long may be respelt freely.
phonetic_score = 90.0
partial_score = 88.0
partial_tokens_min = 2
partial_chars_min = 12  # "Rajesh Kumar" alone does not identify a listed person.
country_bonus = 3.0  # Added when the party's country is the payee's.


class ScreeningThresholds(msgspec.Struct, frozen=True, kw_only=True):
    """Score boundaries: from `block_at` a payout is blocked, from `review_at` reviewed."""

    block_at: float = block_at_default
    review_at: float = review_at_default

    def __post_init__(self) -> None:
        ensure(
            0.0 < self.review_at <= self.block_at <= score_max,
            f"screening thresholds need 0 < review_at <= block_at <= {score_max}",
        )

    def outcome(self, score: float) -> ScreeningOutcome:
        """What a hit of `score` means for the payout."""
        if score >= self.block_at:
            return "block"
        return "review" if score >= self.review_at else "clear"


class Hit(msgspec.Struct, frozen=True, kw_only=True):
    """A listed party whose name (`matched_name`, primary or alias) resembles the query."""

    party: SanctionedParty
    matched_name: str
    score: float
    method: MatchMethod


class _Name(msgspec.Struct, frozen=True, kw_only=True):
    """One listed name: its party's position and its tokens in the order written."""

    party: int
    text: str
    tokens: tuple[str, ...]


class _Query(msgspec.Struct, frozen=True, kw_only=True):
    tokens: tuple[str, ...]
    sorted_form: str
    length_form: str
    written_form: str
    phonetic_form: str


def _natural_order(text: str, tokens: tuple[str, ...]) -> tuple[str, ...]:
    """ "LAST, First" as ("first", "last"); other names as written."""
    surname, comma, given = text.partition(",")
    natural = (*name_tokens(given), *name_tokens(surname)) if comma else tokens
    return natural if sorted(natural) == sorted(tokens) else tokens


def length_key(tokens: Sequence[str]) -> str:
    """`tokens` longest first: an order that a misspelt first letter does not change."""
    return " ".join(sorted(tokens, key=lambda token: (-len(token), token)))


def _prepare_query(text: str) -> _Query:
    tokens = name_tokens(text[:query_chars_max])[:query_tokens_max]
    return _Query(
        tokens=tokens,
        sorted_form=sorted_key(tokens),
        length_form=length_key(tokens),
        written_form=" ".join(tokens),
        phonetic_form=phonetic_key(tokens),
    )


def token_block_keys(token: str) -> tuple[str, ...]:
    """The blocking keys of one token: its prefix, phonetic form and suffix."""
    if len(token) < block_token_chars_min:
        return ()
    keys = ("p" + token[:block_prefix_chars], "f" + phonetic_token(token))
    if len(token) < block_suffix_token_chars_min:
        return keys
    return (*keys, "s" + token[-block_suffix_chars:])


def token_edits_allowed(length: int) -> int:
    """How many edits tokens as long as `length` may differ by and still match."""
    if length <= 2:
        return 0
    if length <= 5:
        return 1
    return 2 if length <= 8 else 3


def acceptable_change(query_token: str, listed_token: str) -> bool:
    """Whether `query_token` may stand for `listed_token` in a fuzzy match.

    Within the edit budget of the shorter token's length. Transliteration rewrites letters in
    groups ("dzh" for "j"), so tokens that sound the same get one edit more, or any number
    when their shared sound is long enough to be distinctive ("karbadzhal", "carbajal").
    """
    if len(listed_token) < guard_token_chars_min:
        return True
    allowed = token_edits_allowed(min(len(query_token), len(listed_token)))
    edits = OSA.distance(query_token, listed_token, score_cutoff=allowed + 1)
    if edits <= allowed:
        return True
    sound = phonetic_token(listed_token)
    if phonetic_token(query_token) != sound:
        return False
    return len(sound) >= distinctive_sound_chars or edits <= allowed + 1


def align_tokens(query: Sequence[str], listed: Sequence[str]) -> list[tuple[int, int]]:
    """Pairs of (query position, listed position), most similar tokens first, each once."""
    ranked = sorted(
        ((fuzz.ratio(q, t), i, j) for i, q in enumerate(query) for j, t in enumerate(listed)),
        reverse=True,
    )
    used_query: set[int] = set()
    used_listed: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for _, i, j in ranked:
        if i not in used_query and j not in used_listed:
            used_query.add(i)
            used_listed.add(j)
            pairs.append((i, j))
    return pairs


def tokens_acceptable(query: Sequence[str], listed: Sequence[str]) -> bool:
    """Whether every aligned pair of tokens is an acceptable change."""
    return all(acceptable_change(query[i], listed[j]) for i, j in align_tokens(query, listed))


def aligned_score(query: Sequence[str], listed: Sequence[str]) -> float | None:
    """The ratio of two names once the query's tokens follow the listed name's order.

    None when a changed token is beyond its edit budget: not a misspelling of the other.
    """
    pairs = align_tokens(query, listed)
    if not all(acceptable_change(query[i], listed[j]) for i, j in pairs):
        return None
    partner = {j: i for i, j in pairs}
    paired = [query[partner[j]] for j in range(len(listed)) if j in partner]
    extra = [token for i, token in enumerate(query) if i not in partner.values()]
    score = fuzz.ratio(" ".join((*paired, *extra)), " ".join(listed))
    return score - short_names_penalty(query, listed)


def short_names_penalty(query: Sequence[str], listed: Sequence[str]) -> float:
    """What a fuzzy score loses when either name is short: a letter there weighs more."""
    length = min(_chars(query), _chars(listed))
    return short_name_penalty * max(0, short_name_chars - length)


def _chars(tokens: Collection[str]) -> int:
    """The length of `tokens` written with single spaces."""
    return sum(len(token) for token in tokens) + max(0, len(tokens) - 1)


def partial_match(query: Sequence[str], listed: Sequence[str]) -> bool:
    """Whether all tokens of one name are in the other, and they are enough to identify."""
    query_set, listed_set = set(query), set(listed)
    shared = query_set & listed_set
    if len(shared) < partial_tokens_min or _chars(shared) < partial_chars_min:
        return False
    return shared in (query_set, listed_set)


def _grouped(keys: Iterable[str]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for number, key in enumerate(keys):
        groups.setdefault(key, []).append(number)
    return groups


class SanctionsIndex:
    """Every name and alias of the loaded parties, blocked for fast candidate lookup."""

    def __init__(
        self,
        parties: Sequence[SanctionedParty],
        names: Sequence[_Name],
        thresholds: ScreeningThresholds,
    ) -> None:
        self._parties = tuple(parties)
        self._names = tuple(names)
        self._sorted_forms = [sorted_key(name.tokens) for name in names]
        self._length_forms = [length_key(name.tokens) for name in names]
        self._written_forms = [" ".join(name.tokens) for name in names]
        self._natural_forms = [" ".join(_natural_order(n.text, n.tokens)) for n in names]
        self._exact = _grouped(self._sorted_forms)
        self._sounds = _grouped(phonetic_key(name.tokens) for name in names)
        self._blocks: dict[str, list[int]] = {}
        for number, name in enumerate(names):
            for key in {key for token in name.tokens for key in token_block_keys(token)}:
                self._blocks.setdefault(key, []).append(number)
        self.thresholds = thresholds

    @classmethod
    def build(
        cls, parties: Iterable[SanctionedParty], *, thresholds: ScreeningThresholds | None = None
    ) -> SanctionsIndex:
        """Index every name and alias of `parties` (hits from `thresholds.review_at`)."""
        party_list = list(parties)
        names = [
            _Name(party=number, text=text, tokens=tokens)
            for number, party in enumerate(party_list)
            for text in dict.fromkeys(party.names)
            if (tokens := name_tokens(text))
        ]
        return cls(party_list, names, thresholds or ScreeningThresholds())

    @property
    def party_count(self) -> int:
        return len(self._parties)

    @property
    def name_count(self) -> int:
        return len(self._names)

    def screen(
        self, name: str, *, country: str | None = None, min_score: float | None = None
    ) -> list[Hit]:
        """The parties whose names resemble `name`, best first, at most `hits_max`.

        Hits score at least `min_score`, by default the review threshold. A party whose
        country is `country` (ISO 3166 alpha-2) scores `country_bonus` more.
        """
        floor = self.thresholds.review_at if min_score is None else min_score
        query = _prepare_query(name)
        if not query.tokens:
            return []
        scores = self._scores(query, floor - country_bonus)
        return self._hits(scores, country.upper() if country else None, floor)

    def _candidates(self, query: _Query) -> list[int]:
        rare: set[int] = set()
        per_token: list[set[int]] = []
        for token in dict.fromkeys(query.tokens):
            found: set[int] = set()
            for key in token_block_keys(token):
                posting = self._blocks.get(key, ())
                if len(posting) <= common_key_names_max:
                    rare.update(posting)
                found.update(posting)
            per_token.append(found)
        if len(per_token) == 1:
            return sorted(per_token[0])
        for first, second in itertools.combinations(per_token, 2):
            rare.update(first & second)
        return sorted(rare)

    def _shortlist(self, query: _Query, candidates: list[int], cutoff: float) -> set[int]:
        """Candidates whose ratio, tokens sorted or as written, reaches `cutoff`."""
        if len(query.sorted_form) < fuzzy_chars_min:
            return set()
        shortlist: set[int] = set()
        for text, forms in (
            (query.sorted_form, self._sorted_forms),
            (query.length_form, self._length_forms),
            (query.written_form, self._written_forms),
            (query.written_form, self._natural_forms),
        ):
            choices = [forms[number] for number in candidates]
            for _, _, position in process.extract(
                text, choices, scorer=fuzz.ratio, score_cutoff=cutoff, limit=None
            ):
                shortlist.add(candidates[position])
        return shortlist

    def _scores(self, query: _Query, cutoff: float) -> dict[int, tuple[float, MatchMethod]]:
        """The best score and its method per listed name, from `cutoff`."""
        best: dict[int, tuple[float, MatchMethod]] = {}
        for number, score, method in itertools.chain(
            self._exact_matches(query),
            self._phonetic_matches(query),
            self._fuzzy_matches(query, cutoff),
        ):
            if score >= cutoff and score > best.get(number, (-1.0, method))[0]:
                best[number] = (score, method)
        return best

    def _exact_matches(self, query: _Query) -> Iterator[_Scored]:
        for number in self._exact.get(query.sorted_form, ()):
            yield number, score_max, "exact"

    def _phonetic_matches(self, query: _Query) -> Iterator[_Scored]:
        if len(query.sorted_form) < phonetic_chars_min:
            return
        for number in self._sounds.get(query.phonetic_form, ()):
            listed = self._names[number].tokens
            if tokens_acceptable(query.tokens, listed):
                yield number, phonetic_score - short_names_penalty(query.tokens, listed), "phonetic"

    def _fuzzy_matches(self, query: _Query, cutoff: float) -> Iterator[_Scored]:
        for number in self._shortlist(query, self._candidates(query), cutoff - shortlist_margin):
            listed = self._names[number].tokens
            if len(self._sorted_forms[number]) < fuzzy_chars_min:
                continue
            aligned = aligned_score(query.tokens, listed)
            if aligned is not None:
                yield number, aligned, "fuzzy"
            if partial_match(query.tokens, listed):
                yield number, partial_score, "partial"

    def _hits(
        self, scores: dict[int, tuple[float, MatchMethod]], country: str | None, floor: float
    ) -> list[Hit]:
        by_party: dict[int, Hit] = {}
        for number, (score, method) in scores.items():
            listed = self._names[number]
            party = self._parties[listed.party]
            final = score
            if country is not None and party.country == country:
                final = min(score_max, score + country_bonus)
            previous = by_party.get(listed.party)
            if final >= floor and (previous is None or final > previous.score):
                by_party[listed.party] = Hit(
                    party=party, matched_name=listed.text, score=round(final, 2), method=method
                )
        ranked = sorted(by_party.values(), key=lambda hit: (-hit.score, hit.party.entry_id))
        return ranked[:hits_max]


def outcome(hits: Sequence[Hit], thresholds: ScreeningThresholds) -> ScreeningOutcome:
    """The outcome of the best hit, or "clear" without hits."""
    return thresholds.outcome(hits[0].score) if hits else "clear"
