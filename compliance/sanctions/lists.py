"""Sanctions list loaders: OFAC's SDN CSV files and a simple CSV format, as `SanctionedParty`.

Lists arrive as files an operator downloads (`kovra sanctions load`, `KOVRA_SANCTIONS_FILES`);
a list that loads half-way would screen payees against part of it without anyone noticing,
so a malformed file fails as a whole with `SanctionsListError` naming the file and line.
Sizes are bounded so a wrong or hostile file cannot exhaust memory.

OFAC publishes `sdn.csv` (one row per entry) and `alt.csv` (its aliases, keyed by the
entry's `ent_num`): no header, `-0-` for an empty field, quoted fields, and a trailing
Ctrl-Z end-of-file marker. The simple format is a CSV with the header
`name,aliases,country,list`, aliases separated by `;` and the country as ISO 3166 alpha-2.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import msgspec

PartyKind = Literal["individual", "entity", "vessel", "aircraft", "unknown"]

rows_max = 1_000_000
field_length_max = 10_000  # OFAC's longest field (Remarks) is about 1,000 characters.
name_length_max = 500
line_bytes_max = 64 * 1024
aliases_per_party_max = 1_000

ofac_list_name = "OFAC SDN"
ofac_null = "-0-"
ofac_sdn_file = "sdn.csv"
ofac_alt_file = "alt.csv"
ofac_sdn_columns = 12
ofac_alt_columns = 5
end_of_file_marker = "\x1a"

simple_header = ("name", "aliases", "country", "list")
simple_alias_separator = ";"

# OFAC leaves SDN_Type empty for entities.
_ofac_kinds: dict[str | None, PartyKind] = {
    "individual": "individual",
    "vessel": "vessel",
    "aircraft": "aircraft",
    None: "entity",
}

# The countries OFAC names in Remarks ("nationality Iran") or as a vessel's flag, as ISO
# 3166 alpha-2; a country not in this table leaves `country` empty.
ofac_countries = {
    "Afghanistan": "AF", "Algeria": "DZ", "Argentina": "AR", "Australia": "AU",
    "Bahrain": "BH", "Belarus": "BY", "Belgium": "BE", "Bosnia and Herzegovina": "BA",
    "Bulgaria": "BG", "Burma": "MM", "Burundi": "BI", "Cambodia": "KH", "Canada": "CA",
    "Central African Republic": "CF", "Chad": "TD", "China": "CN", "Colombia": "CO",
    "Congo, Democratic Republic of the": "CD", "Cuba": "CU", "Cyprus": "CY",
    "Dominican Republic": "DO", "Ecuador": "EC", "Egypt": "EG", "El Salvador": "SV",
    "Eritrea": "ER", "Ethiopia": "ET", "Finland": "FI", "France": "FR", "Georgia": "GE",
    "Germany": "DE", "Greece": "GR", "Guatemala": "GT", "Guinea-Bissau": "GW", "Haiti": "HT",
    "Honduras": "HN", "Hong Kong": "HK", "India": "IN", "Indonesia": "ID", "Iran": "IR",
    "Iraq": "IQ", "Israel": "IL", "Italy": "IT", "Jordan": "JO", "Kazakhstan": "KZ",
    "Kenya": "KE", "Korea, North": "KP", "Korea, South": "KR", "Kuwait": "KW",
    "Kyrgyzstan": "KG", "Latvia": "LV", "Lebanon": "LB", "Libya": "LY", "Malaysia": "MY",
    "Mali": "ML", "Malta": "MT", "Mauritania": "MR", "Mexico": "MX", "Moldova": "MD",
    "Morocco": "MA", "Nicaragua": "NI", "Nigeria": "NG", "Pakistan": "PK", "Panama": "PA",
    "Philippines": "PH", "Qatar": "QA", "Russia": "RU", "Rwanda": "RW",
    "Saudi Arabia": "SA", "Serbia": "RS", "Sierra Leone": "SL", "Slovenia": "SI",
    "Somalia": "SO", "South Africa": "ZA", "South Sudan": "SS", "Spain": "ES", "Sudan": "SD",
    "Switzerland": "CH", "Syria": "SY", "Taiwan": "TW", "Tanzania": "TZ", "Thailand": "TH",
    "Trinidad and Tobago": "TT", "Tunisia": "TN", "Turkey": "TR", "Uganda": "UG",
    "Ukraine": "UA", "United Arab Emirates": "AE", "United Kingdom": "GB",
    "United States": "US", "Uzbekistan": "UZ", "Venezuela": "VE", "Vietnam": "VN",
    "Yemen": "YE", "Zimbabwe": "ZW",
}  # fmt: skip

_remarks_country = re.compile(r"\b(?:nationality|citizen) ([^;.]+)")
_program_separator = re.compile(r"\]\s*\[")
_country_code = re.compile(r"[A-Z]{2}")


class SanctionsListError(ValueError):
    """A list file that cannot be loaded; `line` is 0 when the file as a whole is at fault."""

    def __init__(self, path: Path, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


class SanctionedParty(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of a sanctions list: its primary name, aliases and what is known of it."""

    list_name: str
    entry_id: str
    name: str
    aliases: tuple[str, ...] = ()
    kind: PartyKind = "unknown"
    programs: tuple[str, ...] = ()
    country: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """The primary name followed by the aliases."""
        return (self.name, *self.aliases)


def _decoded(path: Path, number: int, raw: bytes) -> str:
    if len(raw) > line_bytes_max:
        raise SanctionsListError(path, number, f"a line exceeds {line_bytes_max} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        reason = f"not UTF-8 ({error.reason} at byte {error.start})"
        raise SanctionsListError(path, number, reason) from error
    return text.removeprefix("\ufeff") if number == 1 else text


def _lines(path: Path) -> Iterator[str]:
    """The decoded lines of `path`, bounded in length, decoding errors naming their line."""
    try:
        with path.open("rb") as handle:
            raw_lines = iter(lambda: handle.readline(line_bytes_max + 1), b"")
            for number, raw in enumerate(raw_lines, start=1):
                yield _decoded(path, number, raw)
    except OSError as error:
        raise SanctionsListError(path, 0, f"cannot read the file: {error.strerror}") from error


def _is_blank(fields: list[str]) -> bool:
    return all(field in ("", end_of_file_marker) for field in fields)


def _check_lengths(path: Path, line: int, fields: list[str]) -> None:
    for field in fields:
        if len(field) > field_length_max:
            raise SanctionsListError(path, line, f"a field exceeds {field_length_max} chars")


def records(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line, stripped fields) of every non-blank CSV record of `path`, within the bounds.

    `line` is the physical line the record starts on, counting from 1.
    """
    reader = csv.reader(_lines(path), strict=True)
    start, count = 1, 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise SanctionsListError(path, start, f"malformed CSV: {error}") from error
        line, start = start, reader.line_num + 1
        fields = [field.strip() for field in row]
        if _is_blank(fields):
            continue
        count += 1
        if count > rows_max:
            raise SanctionsListError(path, line, f"more than {rows_max} rows")
        _check_lengths(path, line, fields)
        yield line, fields


def _check_columns(path: Path, line: int, fields: list[str], expected: int) -> None:
    if len(fields) != expected:
        raise SanctionsListError(path, line, f"expected {expected} columns, found {len(fields)}")


def _checked_name(path: Path, line: int, name: str | None) -> str:
    if not name:
        raise SanctionsListError(path, line, "the name is empty")
    if len(name) > name_length_max:
        raise SanctionsListError(path, line, f"a name exceeds {name_length_max} chars")
    return name


def _checked_aliases(path: Path, line: int, aliases: list[str]) -> tuple[str, ...]:
    if len(aliases) > aliases_per_party_max:
        raise SanctionsListError(path, line, f"more than {aliases_per_party_max} aliases")
    return tuple(aliases)


# --- OFAC SDN ---------------------------------------------------------------------------


def _ofac_value(field: str) -> str | None:
    return None if field == ofac_null else field


def ofac_programs(program: str | None) -> tuple[str, ...]:
    """OFAC's Program field, "SDGT] [IFSR", as ("SDGT", "IFSR")."""
    if program is None:
        return ()
    parts = (part.strip("[] ") for part in _program_separator.split(program))
    return tuple(part for part in parts if part)


def ofac_country(remarks: str | None, flag: str | None) -> str | None:
    """The ISO code of the first nationality or citizenship in Remarks, else the flag's."""
    match = _remarks_country.search(remarks or "")
    named = match.group(1).strip() if match else flag
    return ofac_countries.get(named or "")


def _ofac_entry_id(path: Path, line: int, field: str) -> str:
    if not field.isdigit():
        raise SanctionsListError(path, line, f"ent_num {field!r} is not a number")
    return field


def _ofac_aliases(path: Path) -> dict[str, list[tuple[int, str]]]:
    aliases: dict[str, list[tuple[int, str]]] = {}
    for line, fields in records(path):
        _check_columns(path, line, fields, ofac_alt_columns)
        entry_id = _ofac_entry_id(path, line, fields[0])
        name = _checked_name(path, line, _ofac_value(fields[3]))
        aliases.setdefault(entry_id, []).append((line, name))
    return aliases


def _ofac_party(path: Path, line: int, fields: list[str], aliases: list[str]) -> SanctionedParty:
    _check_columns(path, line, fields, ofac_sdn_columns)
    values = [_ofac_value(field) for field in fields]
    kind = values[2].lower() if values[2] else None
    return SanctionedParty(
        list_name=ofac_list_name,
        entry_id=_ofac_entry_id(path, line, fields[0]),
        name=_checked_name(path, line, values[1]),
        aliases=_checked_aliases(path, line, aliases),
        kind=_ofac_kinds.get(kind, "unknown"),
        programs=ofac_programs(values[3]),
        country=ofac_country(values[11], values[9]),
    )


def load_ofac(folder: Path) -> list[SanctionedParty]:
    """The entries of OFAC's `sdn.csv` in `folder`, each with its aliases from `alt.csv`."""
    sdn_path, alt_path = folder / ofac_sdn_file, folder / ofac_alt_file
    aliases = _ofac_aliases(alt_path)
    parties: dict[str, SanctionedParty] = {}
    for line, fields in records(sdn_path):
        own = [name for _, name in aliases.pop(fields[0], [])]
        party = _ofac_party(sdn_path, line, fields, own)
        if party.entry_id in parties:
            raise SanctionsListError(sdn_path, line, f"ent_num {party.entry_id} is repeated")
        parties[party.entry_id] = party
    for entry_id, orphans in aliases.items():
        raise SanctionsListError(alt_path, orphans[0][0], f"alias of unknown ent_num {entry_id}")
    return list(parties.values())


# --- Simple CSV -------------------------------------------------------------------------


def _simple_country(path: Path, line: int, field: str) -> str | None:
    if not field:
        return None
    code = field.upper()
    if not _country_code.fullmatch(code):
        raise SanctionsListError(path, line, f"country {field!r} is not ISO 3166 alpha-2")
    return code


def _simple_party(path: Path, line: int, fields: list[str]) -> SanctionedParty:
    _check_columns(path, line, fields, len(simple_header))
    name, aliases, country, list_name = fields
    if not list_name:
        raise SanctionsListError(path, line, "the list name is empty")
    split = [alias.strip() for alias in aliases.split(simple_alias_separator)]
    return SanctionedParty(
        list_name=list_name,
        entry_id=str(line),
        name=_checked_name(path, line, name),
        aliases=_checked_aliases(path, line, [_checked_name(path, line, a) for a in split if a]),
        country=_simple_country(path, line, country),
    )


def load_simple_csv(path: Path) -> list[SanctionedParty]:
    """The entries of a `name,aliases,country,list` CSV; each entry's id is its line number."""
    rows = records(path)
    header = next(rows, None)
    if header is None:
        raise SanctionsListError(path, 1, "the file is empty: expected a header row")
    line, fields = header
    if tuple(field.lower() for field in fields) != simple_header:
        raise SanctionsListError(path, line, f"the header must be {','.join(simple_header)}")
    return [_simple_party(path, line, fields) for line, fields in rows]
