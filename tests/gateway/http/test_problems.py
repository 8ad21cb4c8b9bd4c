"""Every operating error any package raises has its HTTP status in the one mapping
(`gateway.http.problems.statuses`), and the problem names the fields the error names: a
domain error can never reach a client as an unmapped 500."""

from __future__ import annotations

import importlib
import pkgutil

import compliance
import fx
import gateway
import ledger
import rails
from gateway.batches.errors import BatchRejected
from gateway.http.problems import from_domain_error, statuses
from gateway.transfers.errors import TransferNotRecorded
from ledger.errors import DomainError, LedgerError
from rails.bank_details import InvalidBankDetails

# Bases that are never raised themselves, only their subclasses.
abstract = {DomainError, LedgerError}


def every_domain_error() -> set[type[DomainError]]:
    for package in (gateway, ledger, fx, rails, compliance):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if module.name.endswith("__main__"):
                continue  # Running `python -m gateway.cli` would start the command.
            importlib.import_module(module.name)
    found: set[type[DomainError]] = set()
    pending = [DomainError]
    while pending:
        error = pending.pop()
        found.add(error)
        pending.extend(error.__subclasses__())
    return found - abstract


def test_every_domain_error_code_has_a_status() -> None:
    errors = every_domain_error()
    assert len(errors) > 30
    unmapped = sorted(
        f"{e.__module__}.{e.__name__}: {e.code}" for e in errors if e.code not in statuses
    )
    assert unmapped == []


def test_a_problem_names_the_fields_its_error_names() -> None:
    problem = from_domain_error(InvalidBankDetails("iban", "the IBAN's checksum is wrong"))
    assert (problem.status, problem.code) == (422, "invalid_bank_details")
    assert [(e.field, e.message) for e in problem.errors] == [
        ("iban", "the IBAN's checksum is wrong")
    ]
    rejected = from_domain_error(
        BatchRejected("2 items were refused", items=[("items[0]", "a"), ("items[3].iban", "b")])
    )
    assert [e.field for e in rejected.errors] == ["items[0]", "items[3].iban"]


def test_a_refusal_for_now_says_when_to_retry() -> None:
    problem = from_domain_error(TransferNotRecorded("the database is saturated"))
    assert (problem.status, problem.headers) == (503, {"Retry-After": "1"})
