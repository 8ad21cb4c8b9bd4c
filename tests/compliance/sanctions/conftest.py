"""The lists the sanctions tests screen against, loaded once per session.

The real OFAC SDN sample lives next to the repository (`../shared/data/ofac`); CI has it.
Where it is missing, the tests fall back to the small OFAC-format sample shipped in
`fixtures/ofac_sample`, so they never need the network. Either way the index also holds
the shipped simple-format list.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from compliance.sanctions.lists import SanctionedParty, load_ofac, load_simple_csv
from compliance.sanctions.screening import SanctionsIndex

fixtures = Path(__file__).resolve().parent / "fixtures"
shared_ofac = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "ofac"
shipped_ofac = fixtures / "ofac_sample"
simple_list = fixtures / "simple_list.csv"
ordinary_names_file = fixtures / "ordinary_names.txt"


def real_ofac_available() -> bool:
    return (shared_ofac / "sdn.csv").is_file() and (shared_ofac / "alt.csv").is_file()


def ofac_folder() -> Path:
    """The real OFAC sample if present, else the shipped one."""
    return shared_ofac if real_ofac_available() else shipped_ofac


@pytest.fixture(scope="session")
def ofac_parties() -> list[SanctionedParty]:
    return load_ofac(ofac_folder())


@pytest.fixture(scope="session")
def simple_parties() -> list[SanctionedParty]:
    return load_simple_csv(simple_list)


@pytest.fixture(scope="session")
def screening_index(
    ofac_parties: list[SanctionedParty], simple_parties: list[SanctionedParty]
) -> SanctionsIndex:
    return SanctionsIndex.build([*ofac_parties, *simple_parties])
