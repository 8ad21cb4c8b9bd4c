"""Kovra's locust suite: payments, holds and balance reads against a running Kovra.

    KOVRA_ADMIN_TOKEN=... locust -f loadtest/locustfile.py --headless --host http://HOST:8000 \\
        -u USERS -r RATE -t DURATION --csv PREFIX --html PREFIX.html [--processes N]

Setup runs once per run, on the master (or the only process) at start-up, before the
run's clock starts, through the admin API and the tenant API (`loadtest.provisioning`): a
limit policy that does not throttle the run, platform liquidity, and `KOVRA_LOCUST_TENANTS`
tenants (default 24) with a deposit and one recipient per corridor; a failed setup exits 2
saying which call failed. With `--processes N` (or `--master`/`--worker`) the master sends the
setup to every worker in a custom message before it sends any user, and answers a worker
that asks later; a user that has no setup after `setup_wait_seconds` stops.
Deposits are sandbox-only, so the target runs with `KOVRA_ENV=sandbox`.

Each user is one tenant's integration (users are dealt out over the tenants) and repeats,
without think time, a mix weighted like a payouts partner's traffic:

- 5 x a payment: `POST /v1/quotes` from EUR to IDR, GBP or EUR, then `POST /v1/transfers`
  paying that quote to the tenant's recipient in the target currency;
- 2 x a hold: `POST /v1/holds`, then capture (all, or half) or void it;
- 3 x `GET /v1/balances`.

Every POST carries an `Idempotency-Key`, as a careful partner's does. Requests are named by
route (`/v1/holds/{id}/capture`), so reports group them.

At the end the run is judged against thresholds, each an environment variable whose default
is the SPEC §9 goal; every missed threshold is printed with its figure and the exit code is
1, otherwise 0 (even with a few failed requests, as long as the error rate is within bounds):

| variable | default | measured on |
|---|---|---|
| `KOVRA_LOCUST_RPS_MIN` | 5000 | successful `POST /v1/transfers` per second over the run |
| `KOVRA_LOCUST_P50_MS_MAX` | 15 | median latency of `POST /v1/transfers` |
| `KOVRA_LOCUST_P95_MS_MAX` | 50 | 95th percentile latency of `POST /v1/transfers` |
| `KOVRA_LOCUST_ERROR_RATE_MAX` | 0.005 | failed requests / all requests, every route |

Throughput is averaged from the first request to the last, ramp-up included: give `-r` a
rate that reaches `-u` within a small part of `-t`. Reports: `--csv PREFIX` writes
PREFIX_stats.csv, PREFIX_failures.csv, PREFIX_exceptions.csv and PREFIX_stats_history.csv;
`--html FILE` writes the HTML report.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import random
import sys
import uuid
from typing import Any

import gevent  # type: ignore[import-untyped]
import gevent.event  # type: ignore[import-untyped]
import msgspec
from locust import FastHttpUser, constant, events, task
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner
from locust.stats import RequestStats

from loadtest.provisioning import (
    LoadSetup,
    LoadTenant,
    ProvisioningError,
    admin_token_from_environment,
    provision,
    source_currency,
    tenant_count_from_environment,
)
from loadtest.thresholds import (
    RunFigures,
    Thresholds,
    ThresholdsError,
    missed_thresholds,
    thresholds_from_environment,
)

setup_message = "kovra_setup"
setup_request_message = "kovra_setup_request"
setup_wait_seconds = 120.0
transfer_request_name = "/v1/transfers"
transfer_amount_minor_min = 100
transfer_amount_minor_max = 10_000
hold_amount_minor_min = 100
hold_amount_minor_max = 5_000
# Target currencies of payments and their share of them.
payment_targets = ("IDR", "GBP", "EUR")
payment_target_weights = (3, 2, 5)


def _thresholds() -> Thresholds:
    """Read at import, before `--processes` forks, so a bad value stops every process."""
    try:
        return thresholds_from_environment()
    except ThresholdsError as error:
        print(error, file=sys.stderr)
        raise SystemExit(2) from None


class _RunState:
    """This process's view of the run: its thresholds and, once known, its setup."""

    def __init__(self) -> None:
        self.thresholds = _thresholds()
        self.setup: LoadSetup | None = None
        self.setup_error: str | None = None
        self.setup_known = gevent.event.Event()
        self.setup_requested = False
        self.users_started = itertools.count()

    def know(self, setup: LoadSetup) -> None:
        self.setup = setup
        self.setup_known.set()


state = _RunState()


def on_init(environment: Environment, **_: Any) -> None:
    """Given the host, create the setup before the run's clock starts; on a worker, listen
    for the master's setup instead."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Not one line per setup call.
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner.register_message(setup_message, _receive_setup)
        return
    if isinstance(runner, MasterRunner):
        runner.register_message(setup_request_message, _answer_setup_request)
    if not environment.host:
        return  # Set later in the web UI: the setup waits for the test's start.
    try:
        state.know(_provision(environment.host))
    except ProvisioningError as error:
        print(f"setup failed: {error}", file=sys.stderr)
        if not isinstance(runner, MasterRunner):
            raise SystemExit(2) from None
        # A master's forked workers outlive a master that exits here: stop the run once
        # they are connected instead, which tells them to quit.
        state.setup_error = str(error)


def on_test_start(environment: Environment, **_: Any) -> None:
    """Hand the setup to the workers (creating it first if the host came late, from the
    web UI). The master fires this before it sends workers their users, over the same
    connection, so a worker has the setup before its first user starts."""
    runner = environment.runner
    if runner is None or isinstance(runner, WorkerRunner):
        return
    setup = state.setup
    if setup is None and state.setup_error is None:
        try:
            setup = _provision(_host(environment))
        except ProvisioningError as error:
            print(f"setup failed: {error}", file=sys.stderr)
            state.setup_error = str(error)
        else:
            state.know(setup)
            runner.stats.reset_all()  # The run's clock starts after the setup, not before.
    if setup is None:
        print("stopping the run: it has no setup", file=sys.stderr)
        environment.process_exit_code = 2
        # Outside the runner's own greenlets, which quitting kills, as locust's timer does.
        gevent.spawn(runner.quit)
        return
    if isinstance(runner, MasterRunner):
        runner.send_message(setup_message, msgspec.to_builtins(setup))


def _provision(host: str) -> LoadSetup:
    setup = provision(
        host,
        admin_token=admin_token_from_environment(),
        tenant_count=tenant_count_from_environment(),
    )
    print(
        f"setup {setup.run_id}: {len(setup.tenants)} tenants on limit policy {setup.limit_policy}",
        file=sys.stderr,
    )
    return setup


def _host(environment: Environment) -> str:
    if not environment.host:
        raise ProvisioningError("--host is required: the base URL of the Kovra under test")
    return environment.host


def _receive_setup(environment: Environment, msg: Any, **_: Any) -> None:
    state.know(msgspec.convert(msg.data, LoadSetup))


def _answer_setup_request(environment: Environment, msg: Any, **_: Any) -> None:
    runner = environment.runner
    if state.setup is not None and isinstance(runner, MasterRunner):
        runner.send_message(setup_message, msgspec.to_builtins(state.setup), client_id=msg.node_id)


def on_quitting(environment: Environment, **_: Any) -> None:
    """Judge the run on the master or local runner; workers' figures reach the master."""
    runner = environment.runner
    if isinstance(runner, WorkerRunner) or runner is None:
        return
    if environment.process_exit_code is not None:  # Setup failed; that was said already.
        return
    figures = run_figures(runner.stats, locustfile_errors=len(runner.exceptions))
    missed = missed_thresholds(figures, state.thresholds)
    for reason in missed:
        print(f"threshold missed: {reason}", file=sys.stderr)
    if not missed:
        print(
            f"thresholds met: {figures.transfers_per_second:,.1f} transfers/s, "
            f"p50 {figures.transfer_latency_ms_p50:g} ms, "
            f"p95 {figures.transfer_latency_ms_p95:g} ms, "
            f"error rate {figures.error_rate:.4%}",
            file=sys.stderr,
        )
    environment.process_exit_code = 1 if missed else 0


def run_figures(stats: RequestStats, *, locustfile_errors: int) -> RunFigures:
    total = stats.total
    elapsed_seconds = (total.last_request_timestamp or total.start_time) - total.start_time
    transfers = stats.entries.get((transfer_request_name, "POST"))
    requested = transfers.num_requests if transfers else 0
    latency_p50 = latency_p95 = None
    if transfers and requested:
        latency_p50 = float(transfers.get_response_time_percentile(0.5))
        latency_p95 = float(transfers.get_response_time_percentile(0.95))
    return RunFigures(
        transfers_requested=requested,
        transfers_succeeded=requested - (transfers.num_failures if transfers else 0),
        elapsed_seconds=elapsed_seconds,
        transfer_latency_ms_p50=latency_p50,
        transfer_latency_ms_p95=latency_p95,
        requests=total.num_requests,
        failures=total.num_failures,
        locustfile_errors=locustfile_errors,
    )


# Registered by call, not as decorators: locust's listener hooks carry no types.
for hook, listener in (
    (events.init, on_init),
    (events.test_start, on_test_start),
    (events.quitting, on_quitting),
):
    hook.add_listener(listener)  # type: ignore[no-untyped-call]


class PartnerUser(FastHttpUser):
    """One tenant's integration: pays out, holds and reads balances, as fast as answered."""

    wait_time = constant(0)

    tenant: LoadTenant
    headers: dict[str, str]

    def on_start(self) -> None:
        setup = self._wait_for_setup()
        index = next(state.users_started) + getattr(self.environment.runner, "worker_index", 0)
        self.tenant = setup.tenants[index % len(setup.tenants)]
        self.headers = {"Authorization": f"Bearer {self.tenant.api_key}"}

    def _wait_for_setup(self) -> LoadSetup:
        runner = self.environment.runner
        if state.setup is None and isinstance(runner, WorkerRunner) and not state.setup_requested:
            # A worker that joined after the test started missed the broadcast: ask for it.
            state.setup_requested = True
            runner.send_message(setup_request_message)
        if not state.setup_known.wait(setup_wait_seconds) or state.setup is None:
            print(f"no setup after {setup_wait_seconds:g} s; stopping this user", file=sys.stderr)
            raise StopUser
        return state.setup

    def _post_headers(self) -> dict[str, str]:
        return {**self.headers, "Idempotency-Key": str(uuid.uuid4())}

    @task(5)
    def pay(self) -> None:
        """Quote a conversion, then pay the tenant's recipient with that quote."""
        target = random.choices(payment_targets, weights=payment_target_weights)[0]  # noqa: S311
        amount = random.randint(transfer_amount_minor_min, transfer_amount_minor_max)  # noqa: S311
        with self.client.post(
            "/v1/quotes",
            json={
                "source_currency": source_currency,
                "target_currency": target,
                "source_amount": amount,
            },
            headers=self._post_headers(),
            name="/v1/quotes",
            catch_response=True,
        ) as quoted:
            quote_id = _created_id(quoted)
        if quote_id is None:
            return
        with self.client.post(
            "/v1/transfers",
            json={
                "quote_id": quote_id,
                "recipient_id": self.tenant.recipient_ids[target],
                "reference": "locust",
            },
            headers=self._post_headers(),
            name=transfer_request_name,
            catch_response=True,
        ) as transferred:
            _created_id(transferred)

    @task(2)
    def hold(self) -> None:
        """Hold funds, then capture all of them, capture half, or release them."""
        amount = random.randint(hold_amount_minor_min, hold_amount_minor_max)  # noqa: S311
        with self.client.post(
            "/v1/holds",
            json={"currency": source_currency, "amount": amount, "reference": "locust"},
            headers=self._post_headers(),
            name="/v1/holds",
            catch_response=True,
        ) as held:
            hold_id = _created_id(held)
        if hold_id is None:
            return
        outcome = random.choice(("capture", "capture_half", "void"))  # noqa: S311
        action, body = ("void", {}) if outcome == "void" else ("capture", {})
        if outcome == "capture_half":
            body = {"amount": amount // 2}
        with self.client.post(
            f"/v1/holds/{hold_id}/{action}",
            json=body,
            headers=self._post_headers(),
            name=f"/v1/holds/{{id}}/{action}",
            catch_response=True,
        ) as settled:
            _expect_success(settled)

    @task(3)
    def balances(self) -> None:
        self.client.get("/v1/balances", headers=self.headers, name="/v1/balances")


def _expect_success(response: Any) -> bool:
    """Mark a non-2xx answer failed with its problem `code`, so reports say why."""
    if 200 <= response.status_code < 300:
        response.success()
        return True
    code = "no answer" if not response.status_code else "?"
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        code = str(response.json().get("code", code))
    response.failure(f"{response.status_code} {code}")
    return False


def _created_id(response: Any) -> str | None:
    """The `id` of the object a POST created, or None after marking the request failed."""
    if not _expect_success(response):
        return None
    try:
        return str(response.json()["id"])
    except (ValueError, KeyError, TypeError):
        response.failure("a 2xx answer without an id")
        return None
