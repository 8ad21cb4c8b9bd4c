"""The reason code tables: every entry has a sentence; the codes the sandbox and the
refusals use exist in their scheme's table; the facts that matter for a mandate hold (an
account closed or a mandate unknown ends it, insufficient funds or a refund does not); an
unknown code is described as unknown and never ends a mandate."""

from __future__ import annotations

import pytest

from rails.collections import reason_codes
from rails.collections.bacs_dd import BacsDirectDebit
from rails.collections.paywithaccount import PayWithAccount
from rails.collections.scheme import Scheme
from rails.collections.sepa_dd import SepaDirectDebit, sandbox_creditor

schemes: list[Scheme] = [PayWithAccount(), SepaDirectDebit(sandbox_creditor), BacsDirectDebit()]
tables = [reason_codes.sepa_reasons, reason_codes.bacs_reasons, reason_codes.paywithaccount_reasons]


@pytest.mark.parametrize("table", tables)
def test_every_code_has_a_sentence_and_fits_a_reason_code(
    table: dict[str, reason_codes.ReasonCode],
) -> None:
    for code, reason in table.items():
        assert reason.code == code
        assert 1 <= len(code) <= 8
        assert reason.description.endswith(".")
        assert len(reason.description) > 10


@pytest.mark.parametrize("scheme", schemes, ids=lambda scheme: scheme.name.value)
def test_the_codes_a_scheme_answers_with_are_in_its_table(scheme: Scheme) -> None:
    for code in (
        scheme.mandate_cancelled_code,
        scheme.no_mandate_code,
        scheme.unspecified_code,
        scheme.invalid_amount_code,
        scheme.invalid_currency_code,
    ):
        assert scheme.knows_reason(code), code
    assert scheme.is_mandate_fatal(scheme.mandate_cancelled_code)
    assert scheme.is_mandate_fatal(scheme.no_mandate_code)
    assert not scheme.is_mandate_fatal(scheme.unspecified_code)


@pytest.mark.parametrize(
    ("code", "fatal"),
    [
        ("AC01", True),
        ("AC04", True),
        ("AC06", True),
        ("AG01", True),
        ("MD01", True),
        ("MD07", True),
        ("AM04", False),
        ("MD06", False),
        ("MS02", False),
        ("MS03", False),
        ("AM05", False),
        ("FF01", False),
    ],
)
def test_sepa_facts_that_matter_for_a_mandate(code: str, fatal: bool) -> None:
    assert reason_codes.is_fatal(reason_codes.sepa_reasons, code) is fatal


def test_an_unknown_code_is_described_as_unknown_and_never_fatal() -> None:
    for table in tables:
        assert reason_codes.describe(table, "NOPE") == "Unknown reason code 'NOPE'."
        assert not reason_codes.is_fatal(table, "NOPE")
