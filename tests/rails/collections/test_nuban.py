"""The CBN check digit: the published worked examples hold; every single mistyped digit of a
valid NUBAN is caught (the weights 3 and 7 are prime to 10); a bank's three-digit code and
its six-digit form (three leading zeros, the 2020 revision) give the same check digit; and
malformed codes and serials are refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rails.collections import nuban

serials = st.text(alphabet="0123456789", min_size=9, max_size=9)
three_digit_codes = st.text(alphabet="0123456789", min_size=3, max_size=3)
six_digit_codes = st.text(alphabet="0123456789", min_size=6, max_size=6)


@pytest.mark.parametrize(
    ("code", "serial", "digit"),
    [("011", "000001457", 9), ("011", "000000022", 0), ("058", "012345678", 5)],
)
def test_the_worked_examples_hold(code: str, serial: str, digit: int) -> None:
    assert nuban.check_digit(institution_code=code, serial=serial) == digit
    assert nuban.is_valid_nuban(institution_code=code, account_number=serial + str(digit))


def test_a_hand_computed_six_digit_institution_example() -> None:
    # 090267 + 123456789, weights 3,7,3 repeated: 0+63+0+6+42+21+3+14+9+12+35+18+21+56+27 = 327.
    assert nuban.check_digit(institution_code="090267", serial="123456789") == 3


@given(code=st.one_of(three_digit_codes, six_digit_codes), serial=serials, data=st.data())
def test_every_single_mistyped_digit_is_caught(code: str, serial: str, data: st.DataObject) -> None:
    account = serial + str(nuban.check_digit(institution_code=code, serial=serial))
    position = data.draw(st.integers(min_value=0, max_value=9))
    other = data.draw(st.sampled_from([d for d in "0123456789" if d != account[position]]))
    mistyped = account[:position] + other + account[position + 1 :]
    assert nuban.is_valid_nuban(institution_code=code, account_number=account)
    assert not nuban.is_valid_nuban(institution_code=code, account_number=mistyped)


@given(code=three_digit_codes, serial=serials)
def test_a_banks_three_digit_code_and_its_six_digit_form_agree(code: str, serial: str) -> None:
    assert nuban.check_digit(institution_code=code, serial=serial) == nuban.check_digit(
        institution_code="000" + code, serial=serial
    )


@pytest.mark.parametrize("account", ["000001457", "00000145790", "00000145X9", ""])
def test_an_account_number_not_ten_digits_is_invalid(account: str) -> None:
    assert not nuban.is_valid_nuban(institution_code="011", account_number=account)


@pytest.mark.parametrize(
    ("code", "serial"),
    [("11", "000001457"), ("0110", "000001457"), ("011", "00001457"), ("01A", "000001457")],
)
def test_malformed_codes_and_serials_are_refused(code: str, serial: str) -> None:
    with pytest.raises(ValueError, match="digits"):
        nuban.check_digit(institution_code=code, serial=serial)


def test_every_institution_code_in_the_table_is_three_or_six_digits() -> None:
    for code, name in nuban.nigerian_institutions.items():
        assert len(code) in (3, 6)
        assert code.isdigit()
        assert name
