"""`python -m loadtest.fuzz_api`: fuzz the tenant API from its own OpenAPI document.

Schemathesis (its engine, the one its command line drives) reads `/schema/openapi.json`
from a running gateway, generates requests for every `/v1/` operation from the document's
schemas, sends them as one tenant (a Bearer API key) and checks each answer against the
document: never a 5xx, a status and a body the document declares, headers it promises,
and, in the stateful phase, the links between operations. The tests run it briefly against
the e2e deployment (`tests/gateway/e2e/test_fuzzing.py`); this command runs it longer
against any gateway and prints a summary, one line per failing check.

With `--admin-token` instead of `--api-key` it first creates a fresh enterprise tenant
through the admin API and fuzzes as that tenant.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from dataclasses import dataclass, field

import httpx
from schemathesis import BaseSchema, Config, openapi
from schemathesis.engine import Status, events, from_schema
from schemathesis.engine.recorder import ScenarioRecorder

# Only the tenant API is fuzzed: the admin plane and the operational routes are not what a
# partner generates a client for.
tenant_paths_regex = "^/v1/"
server_error_check = "not_a_server_error"
examples_per_operation_default = 25
request_timeout_seconds = 30
admin_timeout_seconds = 30


@dataclass(frozen=True)
class CheckFailure:
    operation: str
    check: str
    title: str


@dataclass
class FuzzSummary:
    """What one run found: failing checks by operation, errors the engine met, and how many
    scenarios it ran."""

    seed: int
    scenarios: int = 0
    scenarios_by_phase: dict[str, int] = field(default_factory=dict)
    failures: set[CheckFailure] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    stop_reason: str = ""

    def failed_checks(self) -> set[str]:
        return {failure.check for failure in self.failures}

    def lines(self) -> list[str]:
        phases = ", ".join(f"{name} {count}" for name, count in self.scenarios_by_phase.items())
        header = (
            f"seed {self.seed}: {self.scenarios} scenarios ({phases}), "
            f"{len(self.failures)} failing checks, {len(self.errors)} errors, "
            f"stopped: {self.stop_reason}"
        )
        failures = [
            f"FAIL {failure.check} {failure.operation}: {failure.title}"
            for failure in sorted(self.failures, key=lambda f: (f.check, f.operation, f.title))
        ]
        return [header, *failures, *(f"ERROR {error}" for error in self.errors)]


@dataclass(frozen=True)
class FuzzOptions:
    examples_per_operation: int = examples_per_operation_default
    every_check: bool = True
    stateful: bool = True
    seed: int = field(default_factory=lambda: secrets.randbelow(2**31))


def fuzz(*, base_url: str, api_key: str, options: FuzzOptions) -> FuzzSummary:
    """Run schemathesis against the gateway at `base_url` as the tenant of `api_key`."""
    config = Config.from_dict(
        {
            "base-url": base_url,
            "seed": options.seed,
            # No cache of earlier runs' observations: a seed alone replays a run.
            "cache": {"enabled": False},
            "headers": {"Authorization": f"Bearer {api_key}"},
            "request-timeout": request_timeout_seconds,
            "generation": {"max-examples": options.examples_per_operation, "database": "none"},
            "checks": {"enabled": options.every_check, server_error_check: {"enabled": True}},
            "phases": {"stateful": {"enabled": options.stateful}},
        }
    )
    document = openapi.from_url(f"{base_url}/schema/openapi.json", config=config)
    schema: BaseSchema = document.include(path_regex=tenant_paths_regex)
    summary = FuzzSummary(seed=options.seed)
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished | events.FuzzScenarioFinished):
            summary.scenarios += 1
            phase = str(getattr(event, "phase", "fuzz"))
            summary.scenarios_by_phase[phase] = summary.scenarios_by_phase.get(phase, 0) + 1
            _record_failures(summary, event.recorder)
        elif isinstance(event, events.NonFatalError):
            summary.errors.append(f"{event.label}: {event.value!r}")
        elif isinstance(event, events.FatalError):
            summary.errors.append(f"fatal: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            summary.stop_reason = str(event.stop_reason)
            for failure in event.failures:
                operation = failure.operation or "the whole run"
                summary.failures.add(CheckFailure(operation, "after_run", failure.title))
    return summary


def _record_failures(summary: FuzzSummary, recorder: ScenarioRecorder) -> None:
    for checks in recorder.checks.values():
        for check in checks:
            if check.status == Status.FAILURE and check.failure_info is not None:
                failure = check.failure_info.failure
                operation = failure.operation or recorder.label
                summary.failures.add(CheckFailure(operation, check.name, failure.title))


def fresh_tenant_key(base_url: str, admin_token: str) -> str:
    """A new enterprise tenant's API key, through the admin API."""
    response = httpx.post(
        f"{base_url}/admin/v1/tenants",
        json={"name": f"fuzz-{secrets.token_hex(4)}", "tier": "enterprise"},
        headers={"Authorization": f"Bearer {admin_token}"},
        timeout=admin_timeout_seconds,
    )
    response.raise_for_status()
    return str(response.json()["api_key"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    credentials = parser.add_mutually_exclusive_group(required=True)
    credentials.add_argument("--api-key", help="fuzz as the tenant of this API key")
    credentials.add_argument("--admin-token", help="create a fresh tenant and fuzz as it")
    parser.add_argument("--examples", type=int, default=examples_per_operation_default)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--server-errors-only", action="store_true", help="check only for 5xx answers"
    )
    parser.add_argument("--no-stateful", action="store_true", help="skip the stateful phase")
    arguments = parser.parse_args(argv)
    api_key = arguments.api_key or fresh_tenant_key(arguments.base_url, arguments.admin_token)
    options = FuzzOptions(
        examples_per_operation=arguments.examples,
        every_check=not arguments.server_errors_only,
        stateful=not arguments.no_stateful,
        **({} if arguments.seed is None else {"seed": arguments.seed}),
    )
    summary = fuzz(base_url=arguments.base_url, api_key=api_key, options=options)
    for line in summary.lines():
        print(line)
    return 1 if summary.failures or summary.errors else 0


if __name__ == "__main__":
    sys.exit(main())
