"""Schemathesis fuzzes the tenant API of the real deployment from the served OpenAPI document
(`loadtest.fuzz_api`), as a fresh tenant with its own Bearer API key.

Each run is seeded (a fresh seed each time, or `KOVRA_FUZZ_SEED`; printed in every failure
message, so that `KOVRA_FUZZ_SEED=N` or `python -m loadtest.fuzz_api --seed N` replays it)
and bounded to a few examples per operation, so the module takes well under a minute.

- Every check runs, and no generated request, valid or not, gets a 5xx: a malformed id, an
  out-of-range amount or a body of the wrong shape is the caller's error, answered as a
  problem. The checks other than `not_a_server_error` are reported, not asserted, here.
- Every check passes, the stateful phase included: the document and the server agree on every
  status, body, header and method. Three checks still fail on some operations, so this one
  is skipped unless `KOVRA_FUZZ_EVERY_CHECK=1` (docs/testing.md says which and why).
"""

from __future__ import annotations

import os
import secrets

import pytest

from loadtest.fuzz_api import FuzzOptions, FuzzSummary, fuzz, server_error_check
from tests.gateway.e2e.conftest import Deployment

examples_per_operation = 5


def fuzzed(deployment: Deployment, *, stateful: bool) -> FuzzSummary:
    _, api_key = deployment.tenant(name="fuzz")
    options = FuzzOptions(
        examples_per_operation=examples_per_operation,
        every_check=True,
        stateful=stateful,
        seed=int(os.environ.get("KOVRA_FUZZ_SEED") or secrets.randbelow(2**31)),
    )
    summary = fuzz(base_url=deployment.base_url, api_key=api_key, options=options)
    print("\n".join(summary.lines()))
    assert summary.scenarios > 0, "\n".join(summary.lines())
    assert not summary.errors, "\n".join(summary.lines())
    return summary


def test_no_generated_request_gets_a_server_error(deployment: Deployment) -> None:
    summary = fuzzed(deployment, stateful=False)
    assert server_error_check not in summary.failed_checks(), "\n".join(summary.lines())


@pytest.mark.skipif(
    os.environ.get("KOVRA_FUZZ_EVERY_CHECK") != "1",
    reason="positive_data_acceptance, negative_data_rejection and allow_header_conformance "
    "still fail on some operations (docs/testing.md says why); run with "
    "KOVRA_FUZZ_EVERY_CHECK=1",
)
def test_every_check_passes_the_stateful_phase_included(deployment: Deployment) -> None:
    summary = fuzzed(deployment, stateful=True)
    assert not summary.failures, "\n".join(summary.lines())
