"""Ledger throughput: `python -m ledger.bench` prints transfers/s per backend and shape.

Shapes: sequential requests of 1, 100 and 8,189 transfers, and 1,000 concurrent
single-transfer calls (the gateway's shape: many requests in flight, batched by the client).
Backends: the embedded engine in memory and with its journal, and, when `TB_ADDRESSES` is
set, a real TigerBeetle cluster through Kovra's adapter. Each row also gives the latency of
one call (p50/p95). `--scale 0.1` shrinks every run for a quick look.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import msgspec
import tigerbeetle as tb

from ledger.clients import (
    EmbeddedClient,
    LedgerClient,
    TigerBeetleClient,
    TigerBeetleSettings,
    batch_size_max,
)
from ledger.invariants import ensure

bench_ledger = 978
transfers_per_shape = {1: 2_000, 100: 50_000, batch_size_max: 5 * batch_size_max}
concurrent_calls = 1_000
concurrent_rounds = 10


class BenchRow(msgspec.Struct, frozen=True, kw_only=True):
    backend: str
    shape: str
    transfers: int
    seconds: float
    transfers_per_second: float
    call_latency_ms_p50: float
    call_latency_ms_p95: float


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _open_pair(client: LedgerClient) -> tuple[int, int]:
    accounts = [tb.Account(id=tb.id(), ledger=bench_ledger, code=1) for _ in range(2)]
    results = await client.create_accounts(accounts)
    ensure(all(r.status is tb.CreateAccountStatus.CREATED for r in results), "bench accounts")
    return accounts[0].id, accounts[1].id


def _transfers(debit: int, credit: int, count: int) -> list[tb.Transfer]:
    return [
        tb.Transfer(
            id=tb.id(),
            debit_account_id=debit,
            credit_account_id=credit,
            amount=1,
            ledger=bench_ledger,
            code=1,
        )
        for _ in range(count)
    ]


async def _submit(client: LedgerClient, batch: list[tb.Transfer]) -> float:
    started = time.perf_counter()
    results = await client.create_transfers(batch)
    elapsed = time.perf_counter() - started
    ensure(all(r.status is tb.CreateTransferStatus.CREATED for r in results), "bench transfers")
    return elapsed


async def bench_sequential(
    client: LedgerClient, backend: str, batch_size: int, total: int
) -> BenchRow:
    debit, credit = await _open_pair(client)
    batches = [_transfers(debit, credit, batch_size) for _ in range(max(1, total // batch_size))]
    started = time.perf_counter()
    latencies = [await _submit(client, batch) for batch in batches]
    return _row(backend, f"sequential batches of {batch_size}", batches, started, latencies)


async def bench_concurrent(client: LedgerClient, backend: str, calls: int, rounds: int) -> BenchRow:
    debit, credit = await _open_pair(client)
    batches = [_transfers(debit, credit, 1) for _ in range(calls * rounds)]
    latencies: list[float] = []
    started = time.perf_counter()
    for round_index in range(rounds):
        chunk = batches[round_index * calls : (round_index + 1) * calls]
        latencies.extend(await asyncio.gather(*(_submit(client, b) for b in chunk)))
    return _row(backend, f"{calls} concurrent calls of 1", batches, started, latencies)


def _row(
    backend: str,
    shape: str,
    batches: list[list[tb.Transfer]],
    started: float,
    latencies: list[float],
) -> BenchRow:
    seconds = time.perf_counter() - started
    count = sum(len(b) for b in batches)
    return BenchRow(
        backend=backend,
        shape=shape,
        transfers=count,
        seconds=round(seconds, 3),
        transfers_per_second=round(count / seconds),
        call_latency_ms_p50=round(1000 * statistics.median(latencies), 2),
        call_latency_ms_p95=round(1000 * _percentile(latencies, 0.95), 2),
    )


@asynccontextmanager
async def _backend(make: Callable[[], LedgerClient]) -> AsyncIterator[LedgerClient]:
    client = make()
    try:
        yield client
    finally:
        await client.close()


async def run(scale: float) -> list[BenchRow]:
    rows: list[BenchRow] = []
    with tempfile.TemporaryDirectory() as directory:
        journal = Path(directory) / "bench.journal"
        backends: list[tuple[str, Callable[[], LedgerClient]]] = [
            ("embedded (memory)", EmbeddedClient),
            ("embedded (journal)", lambda: EmbeddedClient(journal)),
        ]
        if os.environ.get("TB_ADDRESSES", "").strip():
            settings = TigerBeetleSettings.from_environment()
            backends.append(("tigerbeetle", lambda: TigerBeetleClient(settings)))
        for name, make in backends:
            async with _backend(make) as client:
                for batch_size, total in transfers_per_shape.items():
                    size = max(batch_size, int(total * scale))
                    rows.append(await bench_sequential(client, name, batch_size, size))
                rounds = max(1, int(concurrent_rounds * scale))
                rows.append(await bench_concurrent(client, name, concurrent_calls, rounds))
    return rows


def render(rows: list[BenchRow]) -> str:
    header = (
        f"{'backend':<20} {'shape':<32} {'transfers':>10} {'seconds':>8} "
        f"{'transfers/s':>12} {'p50 ms':>8} {'p95 ms':>8}"
    )
    lines = [header, "-" * len(header)]
    lines.extend(
        f"{r.backend:<20} {r.shape:<32} {r.transfers:>10} {r.seconds:>8.3f} "
        f"{r.transfers_per_second:>12,} {r.call_latency_ms_p50:>8.2f} {r.call_latency_ms_p95:>8.2f}"
        for r in rows
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scale", type=float, default=1.0, help="shrink or grow every run")
    parser.add_argument("--json", action="store_true", help="print JSON rows instead")
    arguments = parser.parse_args(argv)
    if not 0 < arguments.scale <= 10:
        parser.error("--scale must be in (0, 10]")
    rows = asyncio.run(run(arguments.scale))
    print(msgspec.json.encode(rows).decode() if arguments.json else render(rows))


if __name__ == "__main__":
    main()
