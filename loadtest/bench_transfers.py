"""`python -m loadtest.bench_transfers`: payments accepted and completed, against the echo.

The production shape by default: the API accepts payments (a quote and a transfer each) and
the lifecycle worker completes them, on the same machine.

Starts the bare msgspec echo app and Kovra (`kovra serve`, `kovra worker` and the shared
ledger: `kovra ledger-server`, or the TigerBeetle cluster of `TB_ADDRESSES` when it is set)
with the same granian settings, keeps both up, and drives them with wrk in rounds (three by
default), each measuring back to back:

1. the echo endpoint, for the ceiling of this machine and server settings;
2. `POST /v1/quotes` for the set duration, each answered quote id written down;
3. `POST /v1/transfers`, each request paying one of those quotes; then, with the worker,
   the drain: until every accepted transfer is final (`loadtest.settlement`).

Prints, per round, quotes/s, transfers/s with their latency p50/p95, payments/s (a quote and
a transfer each, end to end), the ratio to the echo ceiling, and for each phase the CPU the
server spent per request (`loadtest.cpu`), and for the payment phases the CPU the local
ledger (the ledger server, or local TigerBeetle replicas), Redis and Postgres spent per
request (`loadtest.services_cpu`); then the median ratio of the rounds. A shared machine's
speed can drift by half within minutes, so a ratio only compares phases measured seconds
apart, and several rounds show how far it moved. The worker settles the payments on the
sandbox rails meanwhile, as in production (unless `--no-worker`), and each round also
prints accepted/s (201s), completed/s during the load, the drain time, the share completed
within 60 s of the load's end, every process's CPU per completed transfer, and the rows and
WAL Postgres wrote per completed transfer, in all and by table. With `--isolate` both
servers run on cores of their own and everything else on the rest (`loadtest.isolation`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import msgspec

from loadtest import isolation, profiling, services_cpu, settlement
from loadtest.bench_gateway import (
    LoadResult,
    _free_port,
    _granian,
    _process,
    _wait_healthy,
    bench_environment,
    run_script,
    run_wrk,
    shared_ledger,
    unthrottled_tenant,
    wrk_headers,
    wrk_summary,
)
from loadtest.settlement import Settlement

quote_script = (
    wrk_headers
    + """
wrk.body = '{"source_currency": "EUR", "target_currency": "IDR", "source_amount": 1000}'
local counter = 0
setup = function(thread) counter = counter + 1; thread:set("index", counter) end
init = function(args) out = io.open("DIR/quotes-" .. index .. ".txt", "w") end
response = function(status, headers, body)
  local id = body:match('"id":"(quote_[0-9A-Z]+)"')
  if status == 201 and id then out:write(id, "\\n") end
end
"""
    + wrk_summary
)
rounds_max = 20
transfer_script = (
    wrk_headers
    + """
local counter = 0
counted_threads = {}
setup = function(thread)
  counter = counter + 1
  thread:set("index", counter)
  counted_threads[counter] = thread
end
init = function(args)
  created = 0
  quotes = {}
  for line in io.lines("DIR/pool-" .. index .. ".txt") do quotes[#quotes + 1] = line end
  next_quote = 1
  refused = io.open("DIR/refused-" .. index .. ".txt", "w")
end
response = function(status, headers, body)
  if status == 201 then created = created + 1 end
  if status >= 300 then
    refused:write(status, " ", body:match('"code":"([a-z_]+)"') or "?", "\\n")
  end
end
request = function()
  local id = quotes[next_quote] or quotes[#quotes]
  next_quote = next_quote + 1
  local headers = nil
  if KEYED then
    -- Headers given to wrk.format replace wrk.headers: carry those over too.
    headers = {["Idempotency-Key"] = "bench-" .. index .. "-" .. id}
    for name, value in pairs(wrk.headers) do headers[name] = value end
  end
  return wrk.format(nil, "/v1/transfers", headers,
    '{"quote_id": "' .. id .. '", "recipient_id": "RECIPIENT", "reference": "bench"}')
end
"""
    + wrk_summary
)


# What a payer of the benchmarks holds (EUR), what the platform can convert (IDR and EUR),
# and the one recipient every transfer pays, in IDR.
payer_deposits: Final = {"EUR": 10**15}
platform_liquidity: Final = {"IDR": 10**17, "EUR": 10**14}
bench_recipient: Final = {
    "name": "PT Bench",
    "country": "ID",
    "currency": "IDR",
    "bank_details": {"bank_code": "014", "account_number": "1234567890"},
}


def _prepare(base: str) -> tuple[str, str]:
    key = unthrottled_tenant(base, deposits=payer_deposits, liquidity=platform_liquidity)
    headers = {"Authorization": f"Bearer {key}"}
    recipient = httpx.post(f"{base}/v1/recipients", headers=headers, json=bench_recipient)
    recipient.raise_for_status()
    return str(key), str(recipient.json()["id"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--workers", type=int, default=1, help="granian workers, both servers")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=10, help="per phase of each round")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="echo, quotes and transfers measured back to back this many times, so each "
        f"ratio compares phases seconds apart (at most {rounds_max})",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--no-worker",
        dest="worker",
        action="store_false",
        help="leave `kovra worker` out: the API's own capacity, without settlement competing "
        "for the same cores (in production the worker runs on its own machines)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="sample the gateway with py-spy during one phase of the first round and write "
        "the stacks here",
    )
    parser.add_argument("--profile-phase", choices=("quotes", "transfers"), default="transfers")
    parser.add_argument(
        "--idempotency-keys",
        action="store_true",
        help="send every transfer with its own Idempotency-Key, as a partner's integration "
        "does (the key's record is claimed and completed in Redis around the transfer)",
    )
    parser.add_argument(
        "--isolate",
        action="store_true",
        help="run both servers on cores of their own (as many as --workers) and the ledger, "
        "Redis, Postgres, the worker and wrk on the rest, as production runs them on other "
        "machines (`loadtest.isolation`)",
    )
    arguments = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (apt-get install wrk)")
    if not 1 <= arguments.rounds <= rounds_max:
        parser.error(f"--rounds must be 1 to {rounds_max}")
    split = None
    if arguments.isolate:
        try:
            split = isolation.split_cores(arguments.workers)
        except isolation.IsolationUnavailable as error:
            parser.error(str(error))
    arguments.split = split
    with tempfile.TemporaryDirectory(prefix="kovra-bench-") as folder:
        rounds = _run(arguments, Path(folder))
    if arguments.json:
        print(json.dumps({"rounds": [_round_summary(r) for r in rounds]}))
        return
    for index, measured in enumerate(rounds, start=1):
        _print_round(index, measured)
    ratios = sorted(_round_summary(r)["ratio_transfers_echo"] for r in rounds)
    print(
        f"ratio transfers/echo, median of {len(rounds)} round(s): "
        f"{statistics.median(ratios):.2f} (from {ratios[0]:.2f} to {ratios[-1]:.2f}; "
        f"{arguments.workers} granian worker(s), {arguments.connections} connections, "
        f"{arguments.threads} wrk threads, {arguments.seconds} s per phase, "
        f"{os.cpu_count()} cores, {'with' if arguments.worker else 'without'} kovra worker"
        f"{'; ' + arguments.split.describe() if arguments.split else ''})"
    )


@dataclass(frozen=True)
class _Round:
    """One round's wrk phases, and the transfers phase followed to its end when the worker
    ran."""

    results: dict[str, LoadResult]
    settlement: Settlement | None


def _round_summary(measured: _Round) -> dict[str, Any]:
    results = measured.results
    echo, quotes, transfers = results["echo"], results["quotes"], results["transfers"]
    payments = 1 / (1 / quotes.per_second + 1 / transfers.per_second)
    cpu_ratio = (
        echo.server_cpu_ms / transfers.server_cpu_ms
        if echo.server_cpu_ms and transfers.server_cpu_ms
        else None
    )
    return {
        **{name: msgspec.to_builtins(result) for name, result in results.items()},
        "payments_per_second": payments,
        "ratio_transfers_echo": transfers.per_second / echo.per_second,
        "ratio_payments_echo": payments / echo.per_second,
        "cpu_ratio_echo_transfer": cpu_ratio,
        "production_shape": None
        if measured.settlement is None
        else settlement.summary(measured.settlement, echo_per_second=echo.per_second),
    }


def _print_round(index: int, measured: _Round) -> None:
    summary = _round_summary(measured)
    results = measured.results
    print(f"round {index}")
    for name, result in results.items():
        print(
            f"  {name:<10} {result.per_second:>9,.0f} req/s  p50 {result.p50_ms:7.2f} ms  "
            f"p95 {result.p95_ms:7.2f} ms  non-2xx {result.non_2xx}  "
            f"server CPU {result.server_cpu_ms or 0:.3f} ms/request"
        )
        if result.services_cpu_ms:
            services = ", ".join(f"{k} {v:.3f}" for k, v in result.services_cpu_ms.items())
            print(f"  {'':<10} services' CPU, ms/request: {services}")
    print(f"  payments   {summary['payments_per_second']:>9,.0f} /s (a quote and a transfer each)")
    if summary["cpu_ratio_echo_transfer"] is not None:
        print(
            f"  CPU per request, echo/transfer: {summary['cpu_ratio_echo_transfer']:.2f} "
            "(the ratio one core would reach if the server's CPU were the only limit)"
        )
    print(
        f"  ratio transfers/echo: {summary['ratio_transfers_echo']:.2f}, "
        f"payments/echo: {summary['ratio_payments_echo']:.2f}"
    )
    if measured.settlement is not None:
        lines = settlement.report(
            measured.settlement, transfers=results["transfers"], echo=results["echo"]
        )
        print("\n".join(lines))


def _run(arguments: argparse.Namespace, directory: Path) -> list[_Round]:
    with bench_environment(directory) as environment:
        return _measure(arguments, directory, environment)


def _measure(
    arguments: argparse.Namespace, directory: Path, environment: dict[str, str]
) -> list[_Round]:
    """Both servers stay up; each round measures echo, quotes and transfers back to back."""
    load = {
        "connections": arguments.connections,
        "threads": arguments.threads,
        "seconds": arguments.seconds,
    }
    rounds: list[_Round] = []
    echo_port, port = _free_port(), _free_port()
    gateway = [sys.executable, "-m", "gateway.cli"]
    with (
        _process(
            _granian("loadtest.echo:create_echo_app", echo_port, arguments.workers), environment
        ) as echo,
        shared_ledger(environment, directory) as ledger_pid,
        _process(
            [*gateway, "serve", "--port", str(port), "--workers", str(arguments.workers)],
            environment,
        ) as server,
    ):
        service_pids = _service_pids(environment, ledger_pid=ledger_pid)
        echo_url = f"http://127.0.0.1:{echo_port}/echo"
        base = f"http://127.0.0.1:{port}"
        _wait_healthy(echo_url, echo)
        _wait_healthy(f"{base}/health", server)
        key, recipient = _prepare(base)
        worker = (
            _process([*gateway, "worker"], environment)
            if arguments.worker
            else contextlib.nullcontext()
        )
        with (
            worker as worker_process,
            _isolated(arguments.split, echo, server, worker_process, service_pids),
        ):
            target = _Target(
                base=base,
                server_pid=server.pid,
                key=key,
                recipient=recipient,
                service_pids=service_pids,
                database_url=environment["DATABASE_URL"],
                worker_pid=None if worker_process is None else worker_process.pid,
            )
            for index in range(arguments.rounds):
                echo_result = run_wrk(
                    echo_url, api_key="none", directory=directory, server_pid=echo.pid, **load
                )
                profile = arguments.profile if index == 0 else None
                payments, followed = _payments(
                    arguments, directory, target, profile=profile, load=load
                )
                rounds.append(
                    _Round(results={"echo": echo_result, **payments}, settlement=followed)
                )
    _report_refusals(directory)
    if arguments.profile is not None:
        print(profiling.summary(arguments.profile), file=sys.stderr)
    return rounds


def _isolated(
    split: isolation.CoreSplit | None,
    echo: subprocess.Popen[bytes],
    server: subprocess.Popen[bytes],
    worker: subprocess.Popen[bytes] | None,
    service_pids: dict[str, int],
) -> contextlib.AbstractContextManager[None]:
    """Both servers on their cores, the rest (this process and its wrk too) on the others."""
    if split is None:
        return contextlib.nullcontext()
    others = [*service_pids.values(), *([worker.pid] if worker is not None else [])]
    return isolation.isolated(split, servers=[echo.pid, server.pid], others=others)


@dataclass(frozen=True)
class _Target:
    """The running gateway and the tenant the run pays from."""

    base: str
    server_pid: int
    key: str
    recipient: str
    service_pids: dict[str, int]
    database_url: str
    # `kovra worker`, when it runs: the transfers phase then follows its transfers to the end.
    worker_pid: int | None

    def processes(self) -> dict[str, int]:
        """Every process tree whose CPU a completed transfer costs."""
        worker = {} if self.worker_pid is None else {"worker": self.worker_pid}
        return {"gateway": self.server_pid, **worker, **self.service_pids}


def _service_pids(environment: dict[str, str], *, ledger_pid: int | None) -> dict[str, int]:
    """The local services whose CPU each payments phase reports beside the gateway's."""
    found = {
        "ledger": ledger_pid,
        "redis": services_cpu.redis_server_pid(environment["REDIS_URL"]),
        "postgres": services_cpu.postgres_server_pid(environment["DATABASE_URL"]),
    }
    replicas = services_cpu.tigerbeetle_replica_pids(environment.get("TB_ADDRESSES", ""))
    for index, pid in enumerate(replicas):
        found[f"tigerbeetle {index}" if len(replicas) > 1 else "tigerbeetle"] = pid
    return {name: pid for name, pid in found.items() if pid is not None}


def _payments(
    arguments: argparse.Namespace,
    directory: Path,
    target: _Target,
    *,
    profile: Path | None,
    load: dict[str, int],
) -> tuple[dict[str, LoadResult], Settlement | None]:
    """One round's quotes phase, then its transfers phase paying those quotes, followed
    until the worker has finished with them when it runs."""
    base, server_pid, key, recipient = target.base, target.server_pid, target.key, target.recipient
    results: dict[str, LoadResult] = {}
    script = directory / "quotes.lua"
    script.write_text(quote_script.replace("KEY", key).replace("DIR", str(directory)))
    with _profiled(
        profile if arguments.profile_phase == "quotes" else None, server_pid, arguments.seconds
    ):
        results["quotes"] = run_script(
            str(script),
            f"{base}/v1/quotes",
            server_pid=server_pid,
            service_pids=target.service_pids,
            **load,
        )
    _pool(directory, arguments.threads)
    script = directory / "transfers.lua"
    script.write_text(
        transfer_script.replace("KEYED", "true" if arguments.idempotency_keys else "false")
        .replace("KEY", key)
        .replace("DIR", str(directory))
        .replace("RECIPIENT", recipient)
    )

    def transfers() -> LoadResult:
        with _profiled(
            profile if arguments.profile_phase == "transfers" else None,
            server_pid,
            arguments.seconds,
        ):
            return run_script(
                str(script),
                f"{base}/v1/transfers",
                server_pid=server_pid,
                service_pids=target.service_pids,
                **load,
            )

    if target.worker_pid is None:
        return results | {"transfers": transfers()}, None
    result, followed = asyncio.run(
        settlement.measure(target.database_url, target.processes(), transfers)
    )
    return results | {"transfers": result}, followed


def _profiled(
    output: Path | None, pid: int, seconds: int
) -> contextlib.AbstractContextManager[None]:
    if output is None:
        return contextlib.nullcontext()
    return profiling.record(pid, seconds=seconds, output=output)


def _report_refusals(directory: Path) -> None:
    """Say which problems the transfers that were not 2xx got (status and code)."""
    refusals = Counter(
        line for path in directory.glob("refused-*.txt") for line in path.read_text().splitlines()
    )
    for refusal, count in refusals.most_common():
        print(f"transfers refused: {count} x {refusal}", file=sys.stderr)


def _pool(directory: Path, threads: int) -> None:
    """Deal every quote the first phase got out to the second phase's threads."""
    quotes = [
        line for path in sorted(directory.glob("quotes-*.txt")) for line in path.read_text().split()
    ]
    for index in range(threads):
        (directory / f"pool-{index + 1}.txt").write_text("\n".join(quotes[index::threads]))


if __name__ == "__main__":
    main()
