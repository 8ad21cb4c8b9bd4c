"""Nigerian account numbers (NUBAN) and the institutions that hold them.

A NUBAN is ten digits: a nine-digit serial the institution assigns and a check digit the
Central Bank of Nigeria's algorithm derives from the institution's code and the serial, so a
mistyped digit is caught before a mandate is sent. The check digit:

1. take the institution code followed by the nine-digit serial;
2. multiply the digits by the weights 3, 7, 3, 3, 7, 3, ... from the left, and sum;
3. the check digit is 10 minus the sum modulo 10, and 0 where that is 10.

The original scheme (2010) gives deposit money banks three-digit codes, so the weights run
over twelve digits. The 2020 revision gives every institution (microfinance banks, mobile
money operators...) a six-digit code and runs the weights over fifteen digits; a bank's
three-digit code is its six-digit code without the three leading zeros, and since zeros add
nothing to the sum both readings give a bank's accounts the same check digit.

`nigerian_institutions` is the table of institutions Kovra collects from: CBN's three-digit
bank codes and the six-digit codes of the other institutions. An account at an institution
not in it is refused with a clear message rather than sent to fail at the provider.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

serial_digits = 9
account_digits = serial_digits + 1
_weights_cycle = (3, 7, 3)
_digits_pattern = re.compile(r"^\d+$")

# Institution codes (CBN's three-digit bank codes; the six-digit codes of the 2020 revision
# for institutions that have no three-digit one), with each institution's name.
nigerian_institutions: Mapping[str, str] = {
    "011": "First Bank of Nigeria",
    "023": "Citibank Nigeria",
    "030": "Heritage Bank",
    "032": "Union Bank of Nigeria",
    "033": "United Bank for Africa",
    "035": "Wema Bank",
    "044": "Access Bank",
    "050": "Ecobank Nigeria",
    "057": "Zenith Bank",
    "058": "Guaranty Trust Bank",
    "068": "Standard Chartered Bank Nigeria",
    "070": "Fidelity Bank",
    "076": "Polaris Bank",
    "082": "Keystone Bank",
    "100": "SunTrust Bank",
    "101": "Providus Bank",
    "102": "Titan Trust Bank",
    "103": "Globus Bank",
    "214": "First City Monument Bank",
    "215": "Unity Bank",
    "221": "Stanbic IBTC Bank",
    "232": "Sterling Bank",
    "301": "Jaiz Bank",
    "090110": "VFD Microfinance Bank",
    "090267": "Kuda Microfinance Bank",
    "090405": "Moniepoint Microfinance Bank",
    "100004": "OPay (Paycom)",
    "100033": "PalmPay",
}


def check_digit(*, institution_code: str, serial: str) -> int:
    """The CBN check digit of `serial` at the institution `institution_code` (3 or 6 digits)."""
    if len(institution_code) not in (3, 6) or not _digits_pattern.match(institution_code):
        raise ValueError(f"an institution code is 3 or 6 digits, not {institution_code!r}")
    if len(serial) != serial_digits or not _digits_pattern.match(serial):
        raise ValueError(f"a NUBAN serial is {serial_digits} digits, not {serial!r}")
    digits = institution_code + serial
    total = sum(
        int(digit) * _weights_cycle[index % len(_weights_cycle)]
        for index, digit in enumerate(digits)
    )
    return (10 - total % 10) % 10


def is_valid_nuban(*, institution_code: str, account_number: str) -> bool:
    """Whether `account_number` is ten digits whose last is the check digit of the first nine
    at `institution_code`."""
    if len(account_number) != account_digits or not _digits_pattern.match(account_number):
        return False
    serial, given = account_number[:serial_digits], int(account_number[serial_digits])
    return check_digit(institution_code=institution_code, serial=serial) == given
