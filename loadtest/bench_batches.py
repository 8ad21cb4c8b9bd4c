"""`python -m loadtest.bench_batches`: one 10,000-item batch through the API, timed once.

Starts the real processes on a fresh database (`bench_environment`): the shared embedded
ledger server (or, with `TB_ADDRESSES` set, that TigerBeetle cluster) and `kovra serve`.
Through the API it creates a tenant whose limits do not throttle the run, funds its wallet
and the platform's liquidity, creates recipients, then posts one batch of `--items`
payouts (three currency pairs, mixed source- and target-given amounts) and prints the time
from the request to the answer, with every valid item held in the ledger and recorded, and
items per second. The lifecycle worker is not started: the figure is acceptance, not
settlement.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from loadtest import profiling
from loadtest.bench_gateway import (
    _free_port,
    _process,
    _wait_healthy,
    bench_environment,
    shared_ledger,
    unthrottled_tenant,
)

items_default = 10_000
recipients_per_currency = 20
request_timeout_seconds = 120
# Long enough to cover the request; py-spy stops by itself after this.
profile_seconds = 4
recipient_bodies = {
    "IDR": {"country": "ID", "bank_details": {"bank_code": "014", "account_number": "1234567890"}},
    "EUR": {
        "country": "DE",
        "bank_details": {"iban": "DE89370400440532013000", "bic": "COBADEFFXXX"},
    },
    "GBP": {"country": "GB", "bank_details": {"sort_code": "089999", "account_number": "66374958"}},
}
pairs = (("EUR", "IDR"), ("EUR", "GBP"), ("GBP", "GBP"))
target_scale = {"IDR": 20_000}


def _prepare(base: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    key = unthrottled_tenant(
        base,
        deposits={"EUR": 10**14, "GBP": 10**14},
        liquidity={"IDR": 10**17, "EUR": 10**14, "GBP": 10**14},
    )
    headers = {"Authorization": f"Bearer {key}"}
    recipients: dict[str, list[str]] = {}
    for currency, body in recipient_bodies.items():
        recipients[currency] = []
        for index in range(recipients_per_currency):
            response = httpx.post(
                f"{base}/v1/recipients",
                headers=headers,
                json={**body, "name": f"Supplier {currency} {index}", "currency": currency},
            )
            response.raise_for_status()
            recipients[currency].append(response.json()["id"])
    return headers, recipients


def _items(count: int, recipients: dict[str, list[str]]) -> list[dict[str, object]]:
    items: list[dict[str, object]] = []
    for index in range(count):
        source, target = pairs[index % len(pairs)]
        amount_field = "source_amount" if index % 4 else "target_amount"
        # Rupiah has a tiny unit: a target in IDR is scaled so it still costs cents to buy.
        scale = target_scale.get(target, 1) if amount_field == "target_amount" else 1
        items.append(
            {
                "recipient_id": recipients[target][index % recipients_per_currency],
                "source_currency": source,
                "target_currency": target,
                amount_field: (1_000 + index) * scale,
                "reference": f"INV-{index:05d}",
            }
        )
    return items


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--items", type=int, default=items_default)
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="sample the gateway with py-spy while it accepts the batch; stacks go here",
    )
    arguments = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kovra-bench-") as folder:
        directory = Path(folder)
        with bench_environment(directory) as environment:
            port = _free_port()
            environment["KOVRA_ENV"] = "sandbox"
            gateway = [sys.executable, "-m", "gateway.cli"]
            with (
                shared_ledger(environment, directory),
                _process([*gateway, "serve", "--port", str(port)], environment) as server,
            ):
                base = f"http://127.0.0.1:{port}"
                _wait_healthy(f"{base}/health", server)
                headers, recipients = _prepare(base)
                body = {"items": _items(arguments.items, recipients)}
                profiled = (
                    contextlib.nullcontext()
                    if arguments.profile is None
                    else profiling.record(
                        server.pid, seconds=profile_seconds, output=arguments.profile
                    )
                )
                with profiled:
                    started = time.perf_counter()
                    response = httpx.post(
                        f"{base}/v1/batches",
                        headers=headers,
                        json=body,
                        timeout=request_timeout_seconds,
                    )
                    elapsed = time.perf_counter() - started
    if arguments.profile is not None:
        print(profiling.summary(arguments.profile), file=sys.stderr)
    if response.status_code != 201:
        raise SystemExit(f"the batch was refused: {response.status_code} {response.text[:500]}")
    batch = response.json()
    refusals = Counter(i["error"]["code"] for i in batch["items"] if i["status"] == "rejected")
    for code, count in refusals.most_common():
        print(f"refused: {count} x {code}", file=sys.stderr)
    print(
        f"batch of {batch['item_count']:,} items: {batch['accepted_count']:,} accepted and held "
        f"in {elapsed:.3f} s ({batch['accepted_count'] / elapsed:,.0f} items/s; "
        f"{len(batch['nettings'])} netted pairs, 1 gateway worker, {os.cpu_count()} cores)"
    )


if __name__ == "__main__":
    main()
