"""The list loaders read OFAC's SDN files and the simple CSV format, or fail naming the line.

The real OFAC sample loads with every entry and alias (the shipped OFAC-format sample where
the real one is absent); `-0-` becomes None or an empty tuple; types, programs and countries
are parsed; and a malformed file (bad columns, numbers, encoding, quoting, sizes, orphan or
duplicate entries, a wrong header) raises `SanctionsListError` naming the file and line.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from compliance.sanctions import lists
from compliance.sanctions.lists import (
    SanctionedParty,
    SanctionsListError,
    load_ofac,
    load_simple_csv,
    ofac_country,
    ofac_programs,
)
from tests.compliance.sanctions.conftest import real_ofac_available, shipped_ofac, simple_list

real_sample_entries = 8_976
real_sample_aliases = 11_910
shipped_sample_entries = 21
shipped_sample_aliases = 51
simple_list_entries = 36
simple_list_aliases = 50

null_row = ["-0- "] * 10
banco = '306,"BANCO NACIONAL DE CUBA",-0- ,"CUBA",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- '
banco_alias = '306,220,"aka","NATIONAL BANK OF CUBA",-0- '
simple_header = "name,aliases,country,list"


def write(path: Path, *lines: str, ending: str = "\r\n") -> Path:
    path.write_text(ending.join(lines) + ending, encoding="utf-8", newline="")
    return path


def ofac_folder(tmp_path: Path, sdn: list[str], alt: list[str]) -> Path:
    write(tmp_path / "sdn.csv", *sdn)
    write(tmp_path / "alt.csv", *alt)
    return tmp_path


def sdn_row(ent_num: str, name: str, sdn_type: str, program: str, remarks: str = "-0-") -> str:
    return f'{ent_num},"{name}",{sdn_type},"{program}",' + ",".join(["-0- "] * 7) + f',"{remarks}"'


def error_of(excinfo: pytest.ExceptionInfo[SanctionsListError]) -> tuple[str, int]:
    return excinfo.value.path.name, excinfo.value.line


# --- OFAC ------------------------------------------------------------------------------


def test_the_ofac_sample_loads_every_entry_and_alias(ofac_parties: list[SanctionedParty]) -> None:
    expected = (
        (real_sample_entries, real_sample_aliases)
        if real_ofac_available()
        else (shipped_sample_entries, shipped_sample_aliases)
    )
    aliases = sum(len(party.aliases) for party in ofac_parties)
    assert (len(ofac_parties), aliases) == expected
    assert len({party.entry_id for party in ofac_parties}) == len(ofac_parties)
    assert {party.list_name for party in ofac_parties} == {"OFAC SDN"}


def test_the_shipped_sample_parses_kinds_programs_countries_and_aliases() -> None:
    parties = {party.entry_id: party for party in load_ofac(shipped_ofac)}
    assert len(parties) == shipped_sample_entries
    assert parties["306"] == SanctionedParty(
        list_name="OFAC SDN",
        entry_id="306",
        name="BANCO NACIONAL DE CUBA",
        aliases=("NATIONAL BANK OF CUBA",),
        kind="entity",
        programs=("CUBA",),
        country=None,
    )
    assert parties["4632"].programs == ("IRAN", "SDGT", "IRGC", "IFSR")
    assert (parties["13086"].kind, parties["13086"].country) == ("individual", "RU")
    assert (parties["4234"].kind, parties["4234"].country) == ("vessel", "CU")
    assert parties["15431"].kind == "aircraft"
    assert parties["6703"].aliases[:2] == ("AMESCUA, Chuey", "AMEZCUA, Chuy")


def test_null_fields_become_none_or_empty(tmp_path: Path) -> None:
    folder = ofac_folder(tmp_path, [f'7,"LONE NAME",{",".join(null_row)}'], [])
    [party] = load_ofac(folder)
    assert (party.kind, party.programs, party.country, party.aliases) == ("entity", (), None, ())


def test_an_unknown_sdn_type_is_kept_as_unknown(tmp_path: Path) -> None:
    folder = ofac_folder(tmp_path, [sdn_row("7", "SOME THING", "spacecraft", "X")], [])
    assert load_ofac(folder)[0].kind == "unknown"


@pytest.mark.parametrize(
    ("field", "expected"),
    [(None, ()), ("SDGT", ("SDGT",)), ("SDGT] [IFSR", ("SDGT", "IFSR")), ("[A] [B]", ("A", "B"))],
)
def test_programs_are_split(field: str | None, expected: tuple[str, ...]) -> None:
    assert ofac_programs(field) == expected


@pytest.mark.parametrize(
    ("remarks", "flag", "expected"),
    [
        ("DOB 1960; nationality Russia; Gender Male.", None, "RU"),
        ("citizen Korea, North; Passport 1.", None, "KP"),
        ("nationality Atlantis.", None, None),
        (None, "Iran", "IR"),
        (None, None, None),
    ],
)
def test_the_country_comes_from_nationality_citizenship_or_flag(
    remarks: str | None, flag: str | None, expected: str | None
) -> None:
    assert ofac_country(remarks, flag) == expected


def test_a_quoted_field_may_span_lines_and_lines_stay_true(tmp_path: Path) -> None:
    spanning = sdn_row("8", "TWO LINE", "individual", "X", remarks="first\r\nsecond")
    folder = ofac_folder(tmp_path, [spanning, "9,BROKEN"], [])
    with pytest.raises(SanctionsListError) as excinfo:
        load_ofac(folder)
    assert error_of(excinfo) == ("sdn.csv", 3)


@pytest.mark.parametrize(
    ("sdn", "alt", "where", "reason"),
    [
        (["36,ONLY,THREE"], [], ("sdn.csv", 1), "expected 12 columns, found 3"),
        ([banco, sdn_row("x1", "BAD", "-0-", "X")], [], ("sdn.csv", 2), "not a number"),
        ([banco, sdn_row("306", "AGAIN", "-0-", "X")], [], ("sdn.csv", 2), "repeated"),
        ([sdn_row("5", "-0-", "-0-", "X")], [], ("sdn.csv", 1), "name is empty"),
        ([banco], [banco_alias, '999,1,"aka","GHOST",-0- '], ("alt.csv", 2), "unknown ent_num"),
        ([banco], [banco_alias, "306,221,aka"], ("alt.csv", 2), "expected 5 columns"),
        ([banco], ['306,222,"aka",-0- ,-0- '], ("alt.csv", 1), "name is empty"),
        ([banco, '"unterminated'], [], ("sdn.csv", 2), "malformed CSV"),
    ],
)
def test_a_malformed_ofac_file_names_the_file_and_line(
    tmp_path: Path, sdn: list[str], alt: list[str], where: tuple[str, int], reason: str
) -> None:
    with pytest.raises(SanctionsListError, match=reason) as excinfo:
        load_ofac(ofac_folder(tmp_path, sdn, alt))
    assert error_of(excinfo) == where
    assert str(excinfo.value).startswith(f"{tmp_path / where[0]}:{where[1]}: ")


def test_a_missing_alias_file_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "sdn.csv", banco)
    with pytest.raises(SanctionsListError, match="cannot read") as excinfo:
        load_ofac(tmp_path)
    assert error_of(excinfo) == ("alt.csv", 0)


def test_invalid_utf8_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "sdn.csv").write_bytes(banco.encode() + b'\r\n7,"CAF\xe9"\r\n')
    write(tmp_path / "alt.csv", banco_alias)
    with pytest.raises(SanctionsListError, match="not UTF-8") as excinfo:
        load_ofac(tmp_path)
    assert error_of(excinfo) == ("sdn.csv", 2)


def test_sizes_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    long_name = sdn_row("7", "A" * (lists.name_length_max + 1), "-0-", "X")
    with pytest.raises(SanctionsListError, match="name exceeds") as excinfo:
        load_ofac(ofac_folder(tmp_path, [banco, long_name], []))
    assert error_of(excinfo) == ("sdn.csv", 2)
    long_field = sdn_row("7", "B", "-0-", "X", remarks="r" * (lists.field_length_max + 1))
    with pytest.raises(SanctionsListError, match="field exceeds"):
        load_ofac(ofac_folder(tmp_path, [long_field], []))
    monkeypatch.setattr(lists, "rows_max", 1)
    with pytest.raises(SanctionsListError, match="more than 1 rows") as excinfo:
        load_ofac(ofac_folder(tmp_path, [banco, sdn_row("7", "C", "-0-", "X")], []))
    assert error_of(excinfo) == ("sdn.csv", 2)


def test_an_overlong_line_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    (tmp_path / "list.csv").write_bytes(b"x" * (lists.line_bytes_max + 10))
    with pytest.raises(SanctionsListError, match="line exceeds") as excinfo:
        load_simple_csv(tmp_path / "list.csv")
    assert error_of(excinfo) == ("list.csv", 1)


def test_a_party_survives_a_json_round_trip(ofac_parties: list[SanctionedParty]) -> None:
    """`kovra sanctions load` stores parties as JSON in Postgres."""
    for party in ofac_parties[:50]:
        encoded = msgspec.json.encode(party)
        assert msgspec.json.decode(encoded, type=SanctionedParty) == party


# --- Simple CSV ------------------------------------------------------------------------


def test_the_shipped_simple_list_loads() -> None:
    parties = load_simple_csv(simple_list)
    assert len(parties) == simple_list_entries
    assert sum(len(party.aliases) for party in parties) == simple_list_aliases
    assert parties[1] == SanctionedParty(
        list_name="EXAMPLE EU",
        entry_id="3",
        name="ORLOVSKY, Dmitri Petrovich",
        aliases=("Дмитрий Петрович Орловский", "Dmitriy Orlovskiy"),
        kind="unknown",
        country="RU",
    )


def test_simple_rows_are_trimmed_blank_lines_skipped_and_countries_upper_cased(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path / "list.csv",
        "\ufeffName,Aliases,Country,List",
        "",
        " Jane Roe , J. Roe ;; Janet Roe ; , gb , LOCAL ",
        "Acme Export,,,LOCAL",
        ending="\n",
    )
    roe, acme = load_simple_csv(path)
    assert (roe.entry_id, roe.name, roe.aliases, roe.country) == (
        "3", "Jane Roe", ("J. Roe", "Janet Roe"), "GB",
    )  # fmt: skip
    assert (acme.aliases, acme.country, acme.list_name) == ((), None, "LOCAL")


@pytest.mark.parametrize(
    ("lines", "line", "reason"),
    [
        ([], 1, "empty"),
        (["name,aliases,country"], 1, "header must be"),
        ([simple_header, "Jane Roe,,GB"], 2, "expected 4 columns"),
        ([simple_header, ",alias,GB,LOCAL"], 2, "name is empty"),
        ([simple_header, "Jane Roe,,GBR,LOCAL"], 2, "not ISO 3166"),
        ([simple_header, "Jane Roe,,GB,"], 2, "list name is empty"),
        ([simple_header, "ok,,,L", "Jane Roe,,1X,LOCAL"], 3, "not ISO 3166"),
    ],
)
def test_a_malformed_simple_file_names_the_file_and_line(
    tmp_path: Path, lines: list[str], line: int, reason: str
) -> None:
    path = tmp_path / "list.csv"
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(SanctionsListError, match=reason) as excinfo:
        load_simple_csv(path)
    assert error_of(excinfo) == ("list.csv", line)


def test_too_many_aliases_are_refused(tmp_path: Path) -> None:
    aliases = ";".join(f"Alias {n}" for n in range(lists.aliases_per_party_max + 1))
    path = write(tmp_path / "list.csv", simple_header, f"Jane Roe,{aliases},,LOCAL")
    with pytest.raises(SanctionsListError, match="aliases") as excinfo:
        load_simple_csv(path)
    assert error_of(excinfo) == ("list.csv", 2)
