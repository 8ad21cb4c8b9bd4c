"""Rail choice follows SPEC §6: the fast rail up to its limit, inclusive, then the
large-value rail; each corridor pays in its own currency."""

from __future__ import annotations

import pytest

from rails.corridors import Corridor, Rail, UnsupportedCorridor, choose_rail, corridor_for


@pytest.mark.parametrize(
    ("corridor", "amount", "rail"),
    [
        (Corridor.EU, 100_000_00, Rail.SEPA_INSTANT),
        (Corridor.EU, 100_000_01, Rail.SEPA_CREDIT_TRANSFER),
        (Corridor.UK, 1_000_000_00, Rail.FASTER_PAYMENTS),
        (Corridor.UK, 1_000_000_01, Rail.CHAPS),
        (Corridor.ID, 250_000_000_00, Rail.BI_FAST),
        (Corridor.ID, 250_000_000_01, Rail.RTGS),
    ],
)
def test_rail_choice(corridor: Corridor, amount: int, rail: Rail) -> None:
    assert choose_rail(corridor, amount_minor=amount) is rail


def test_corridors_by_country_and_currency() -> None:
    assert corridor_for(country="FR", currency="EUR") is Corridor.EU
    assert corridor_for(country="GB", currency="GBP") is Corridor.UK
    assert corridor_for(country="ID", currency="IDR") is Corridor.ID
    with pytest.raises(UnsupportedCorridor, match="in GBP, not EUR"):
        corridor_for(country="GB", currency="EUR")
    with pytest.raises(UnsupportedCorridor, match="does not pay out"):
        corridor_for(country="US", currency="USD")
