"""Schemathesis fuzzes the API of a real deployment from the served OpenAPI document
(`loadtest.fuzz_api`), every check on, the stateful phase included, and finds the document
and the server in agreement on every status, body, header and method:

- the tenant API, as a fresh tenant with its own Bearer API key, on the shared deployment;
- the admin plane, with the admin token, on a deployment of its own: it sets rates, funds
  liquidity and freezes tenants, which would disturb every other test.

Besides schemathesis's checks, `shape_refusal` holds that a request generated from the
document's schemas is never refused for its shape (the domain may still refuse it: a quote
too large to convert is a 422 `invalid_amount`). A check set aside for an operation whose
contract it does not fit (`loadtest.fuzz_api.checks_not_applicable`) says why in the
summary.

Each run is seeded (a fresh seed each time, or `KOVRA_FUZZ_SEED`; printed in every failure
message, so that `KOVRA_FUZZ_SEED=N` or `python -m loadtest.fuzz_api --seed N` replays it)
and bounded to a few examples per operation, so the module takes about a minute; the longer
run is `python -m loadtest.fuzz_api` (docs/testing.md).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from loadtest.fuzz_api import FuzzOptions, FuzzSummary, fuzz, server_error_check
from tests.gateway.e2e.conftest import Deployment, admin_token, running_deployment

examples_per_operation = 8
# Redis database of the admin plane's own deployment (the shared one is on 14).
admin_deployment_redis_db = 5


def fuzzed(deployment: Deployment, *, plane: str) -> FuzzSummary:
    if plane == "admin":
        bearer_token = admin_token
    else:
        _, bearer_token = deployment.tenant(name="fuzz")
    options = FuzzOptions(
        examples_per_operation=examples_per_operation,
        every_check=True,
        stateful=True,
        seed=int(os.environ.get("KOVRA_FUZZ_SEED") or secrets.randbelow(2**31)),
    )
    summary = fuzz(
        base_url=deployment.base_url, bearer_token=bearer_token, options=options, plane=plane
    )
    print("\n".join(summary.lines()))
    assert summary.scenarios > 0, "\n".join(summary.lines())
    assert summary.scenarios_by_phase.get("stateful", 0) > 0, "\n".join(summary.lines())
    assert not summary.errors, "\n".join(summary.lines())
    return summary


@pytest.fixture(scope="module")
def admin_deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp("admin-fuzz")
    with running_deployment(tmp, redis_db=admin_deployment_redis_db) as running:
        yield running


def test_the_tenant_api_passes_every_check(deployment: Deployment) -> None:
    summary = fuzzed(deployment, plane="tenant")
    assert server_error_check not in summary.failed_checks(), "\n".join(summary.lines())
    assert not summary.failures, "\n".join(summary.lines())


def test_the_admin_plane_passes_every_check(admin_deployment: Deployment) -> None:
    summary = fuzzed(admin_deployment, plane="admin")
    assert not summary.failures, "\n".join(summary.lines())
