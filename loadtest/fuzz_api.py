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
import csv
import io
import secrets
import sys
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import schemathesis
from schemathesis import BaseSchema, Config, openapi
from schemathesis.engine import Status, events, from_schema
from schemathesis.engine.recorder import ScenarioRecorder

from gateway.batches.routes import csv_content_type
from gateway.batches.wire import csv_columns

# The two planes a run fuzzes, one at a time: the tenant API as a tenant (an API key), the
# admin plane as an operator (the admin token). The operational routes are not fuzzed.
plane_paths_regex = {"tenant": "^/v1/", "admin": "^/admin/v1/"}
server_error_check = "not_a_server_error"
examples_per_operation_default = 25
request_timeout_seconds = 30
admin_timeout_seconds = 30
# A request the document calls valid may still be refused by the domain (a quote too large to
# convert, a capture above its hold, a recipient in another currency than the quote): 422
# with the domain's code, which the document lists. So `positive_data_acceptance` takes 422
# too, and `shape_refusal` below holds the line that matters: such a request is never
# refused for its shape, which the document alone decides.
positive_expected_statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
# The codes that refuse a request for its shape: what the document's schemas say.
shape_problem_codes = frozenset(
    {
        "bad_request",
        "malformed_json",
        "validation_error",
        "unknown_currency",
        "currency_not_enabled",
        "unsupported_media_type",
    }
)
shape_refusal_check = "shape_refusal"
# Checks whose premise an operation's contract does not share, by (check, operation), each
# with the reason: their failures are set aside (and counted), not reported as failures.
checks_not_applicable: dict[tuple[str, str], str] = {
    ("negative_data_rejection", "POST /v1/batches"): (
        "a batch validates each item on its own and answers 201 with the bad ones refused "
        "in their results (docs/guides/batches.md), so an item that breaks its schema is not the "
        "whole request's 4xx"
    ),
}


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
    # Failures of a check on an operation whose contract it does not apply to
    # (`checks_not_applicable`).
    set_aside: set[CheckFailure] = field(default_factory=set)
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
        set_aside = [
            f"SET ASIDE {check} {operation}: {checks_not_applicable[check, operation]}"
            for check, operation in sorted({(f.check, f.operation) for f in self.set_aside})
        ]
        return [header, *failures, *set_aside, *(f"ERROR {error}" for error in self.errors)]


@dataclass(frozen=True)
class FuzzOptions:
    examples_per_operation: int = examples_per_operation_default
    every_check: bool = True
    stateful: bool = True
    seed: int = field(default_factory=lambda: secrets.randbelow(2**31))


def fuzz(
    *, base_url: str, bearer_token: str, options: FuzzOptions, plane: str = "tenant"
) -> FuzzSummary:
    """Run schemathesis against the `plane` of the gateway at `base_url`, presenting
    `bearer_token` (a tenant's API key, or the admin token for the admin plane)."""
    config = Config.from_dict(
        {
            "base-url": base_url,
            "seed": options.seed,
            # No cache of earlier runs' observations: a seed alone replays a run.
            "cache": {"enabled": False},
            "headers": {"Authorization": f"Bearer {bearer_token}"},
            "request-timeout": request_timeout_seconds,
            "generation": {"max-examples": options.examples_per_operation, "database": "none"},
            "checks": {
                "enabled": options.every_check,
                server_error_check: {"enabled": True},
                "positive_data_acceptance": {"expected-statuses": positive_expected_statuses},
            },
            "phases": {"stateful": {"enabled": options.stateful}},
        }
    )
    document = openapi.from_url(f"{base_url}/schema/openapi.json", config=config)
    schema: BaseSchema = document.include(path_regex=plane_paths_regex[plane])
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
                found = CheckFailure(operation, check.name, failure.title)
                if (check.name, operation) in checks_not_applicable:
                    summary.set_aside.add(found)
                else:
                    summary.failures.add(found)


class _ProblemCode(msgspec.Struct):
    code: str = ""


@schemathesis.check
def shape_refusal(
    ctx: schemathesis.CheckContext,
    response: schemathesis.Response,
    case: schemathesis.Case[Any],
) -> bool | None:
    """A request generated from the document's schemas (positive data) is never refused for
    its shape: the problem's code is a domain's, never a shape code (`shape_problem_codes`)."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code < 400:
        return None
    try:
        code = msgspec.json.decode(response.content, type=_ProblemCode).code
    except msgspec.DecodeError:
        return None
    if code in shape_problem_codes:
        raise AssertionError(
            f"a schema-valid request was refused for its shape: {response.status_code} {code}"
        )
    return None


@schemathesis.serializer(csv_content_type)
def csv_rows(_: schemathesis.SerializationContext, value: Any) -> bytes:
    """A CSV batch from the rows the document describes: a header naming the batch's
    columns and every other column a row has, then the rows. A value that is not a list of
    rows (negative data) goes as its JSON text, which no CSV header fits."""
    if not isinstance(value, list) or not all(isinstance(row, dict) for row in value):
        return msgspec.json.encode(value)
    columns = list(dict.fromkeys([*csv_columns, *(key for row in value for key in row)]))
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows(value)
    return text.getvalue().encode()


@schemathesis.serializer("application/xml", "text/xml")
def xml_text(_: schemathesis.SerializationContext, value: Any) -> bytes:
    """A bank statement file as the document describes it: text, sent as it is. A value that
    is not text (negative data) goes as its JSON text, which no statement schema takes."""
    return value.encode() if isinstance(value, str) else msgspec.json.encode(value)


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
    credentials.add_argument(
        "--admin-token",
        help="the tenant plane: create a fresh tenant and fuzz as it; the admin plane: fuzz it",
    )
    parser.add_argument("--plane", choices=sorted(plane_paths_regex), default="tenant")
    parser.add_argument("--examples", type=int, default=examples_per_operation_default)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--server-errors-only", action="store_true", help="check only for 5xx answers"
    )
    parser.add_argument("--no-stateful", action="store_true", help="skip the stateful phase")
    arguments = parser.parse_args(argv)
    if arguments.plane == "admin":
        if arguments.admin_token is None:
            parser.error("--plane admin needs --admin-token")
        bearer_token = arguments.admin_token
    else:
        bearer_token = arguments.api_key or fresh_tenant_key(
            arguments.base_url, arguments.admin_token
        )
    options = FuzzOptions(
        examples_per_operation=arguments.examples,
        every_check=not arguments.server_errors_only,
        stateful=not arguments.no_stateful,
        **({} if arguments.seed is None else {"seed": arguments.seed}),
    )
    summary = fuzz(
        base_url=arguments.base_url,
        bearer_token=bearer_token,
        options=options,
        plane=arguments.plane,
    )
    for line in summary.lines():
        print(line)
    return 1 if summary.failures or summary.errors else 0


if __name__ == "__main__":
    sys.exit(main())
