"""`python -m loadtest.profile_transfers`: a payment's CPU in the gateway's own process, and
where it goes (pyinstrument).

`bench_transfers` measures the server through wrk, with every service on the same cores and
a machine whose speed can drift by half within minutes: right for the throughput the API
reaches, too coarse to see a change of a few microseconds in the gateway's Python. This
drives the gateway's ASGI app directly, in this process, with `--payers` concurrent payers
against the real services: a fresh, migrated Postgres database, the benchmarks' Redis
database, and the ledger in a process of its own (`kovra ledger-server`, or the cluster of
TB_ADDRESSES). So the CPU this process spends is the gateway's, plus the few microseconds
a request's scope and messages cost to build here, with no HTTP parsing and no network.

Each round prices `--transfers` quotes, then pays each with a transfer; it prints the CPU
per quote and per transfer (process time) and the in-process rate, then the minimum over
the rounds, the least disturbed by the rest of the machine. With `--profile FILE` one more
round's transfers run under pyinstrument, and the profile goes to FILE (HTML when its name
ends in `.html`, text otherwise); that round is left out of the figures, since profiling
slows it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Final

import httpx
import msgspec
import uvloop
from litestar import Litestar
from pyinstrument import Profiler

from loadtest.bench_gateway import bench_environment, provision_unthrottled_tenant, shared_ledger
from loadtest.bench_transfers import bench_recipient, payer_deposits, platform_liquidity

payers_max: Final = 1_024
transfers_max: Final = 100_000
rounds_max: Final = 20
quote_body: Final = b'{"source_currency": "EUR", "target_currency": "IDR", "source_amount": 100000}'
_created: Final = 201


class _Created(msgspec.Struct):
    id: str


_decode_created = msgspec.json.Decoder(_Created).decode


class RoundFigures(msgspec.Struct, frozen=True, kw_only=True):
    """One round: CPU per request of each phase, in ms, and the in-process transfer rate."""

    quote_cpu_ms: float
    transfer_cpu_ms: float
    transfers_per_second: float


Post = Callable[[str, bytes], Awaitable[bytes]]


def asgi_post(app: Litestar, api_key: str) -> Post:
    """POST `body` to `path` through the app's whole ASGI stack (middleware, hot routes,
    Litestar) as granian would; the response body, or RuntimeError unless it is a 201."""
    headers = [
        (b"authorization", f"Bearer {api_key}".encode()),
        (b"content-type", b"application/json"),
    ]

    async def post(path: str, body: bytes) -> bytes:
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        messages = iter([{"type": "http.request", "body": body, "more_body": False}])
        status: list[int] = []
        chunks: list[bytes] = []

        async def receive() -> Any:
            # One message carries the whole body; nothing is read after it.
            return next(messages)

        async def send(message: Any) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await app(scope, receive, send)  # type: ignore[arg-type]
        answer = b"".join(chunks)
        if status != [_created]:
            raise RuntimeError(f"POST {path} answered {status}: {answer[:300]!r}")
        return answer

    return post


async def _in_parallel(payers: int, work: Iterator[Awaitable[None]]) -> None:
    """`payers` tasks, each awaiting the next item of `work` until none is left."""

    async def payer() -> None:
        for item in work:
            await item

    await asyncio.gather(*(payer() for _ in range(payers)))


async def _round(post: Post, *, recipient_id: str, payers: int, transfers: int) -> RoundFigures:
    quote_ids: list[str] = []

    async def quote() -> None:
        quote_ids.append(_decode_created(await post("/v1/quotes", quote_body)).id)

    started_cpu = time.process_time()
    await _in_parallel(payers, (quote() for _ in range(transfers)))
    quote_cpu = time.process_time() - started_cpu

    async def transfer(quote_id: str) -> None:
        body = (
            f'{{"quote_id": "{quote_id}", "recipient_id": "{recipient_id}", '
            f'"reference": "profile"}}'
        ).encode()
        await post("/v1/transfers", body)

    started_cpu, started_wall = time.process_time(), time.perf_counter()
    await _in_parallel(payers, (transfer(quote_id) for quote_id in quote_ids))
    transfer_cpu = time.process_time() - started_cpu
    elapsed = time.perf_counter() - started_wall
    return RoundFigures(
        quote_cpu_ms=quote_cpu * 1000 / transfers,
        transfer_cpu_ms=transfer_cpu * 1000 / transfers,
        transfers_per_second=transfers / elapsed,
    )


async def _prepared(app: Litestar) -> tuple[str, str]:
    """An unthrottled tenant's API key and the recipient its transfers pay."""
    application: Any = app  # An ASGI app; httpx's annotation is narrower than Litestar's.
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://kovra") as client:
        api_key = await provision_unthrottled_tenant(
            client, deposits=payer_deposits, liquidity=platform_liquidity
        )
        created = await client.post(
            "/v1/recipients", headers={"Authorization": f"Bearer {api_key}"}, json=bench_recipient
        )
        created.raise_for_status()
        return api_key, str(created.json()["id"])


async def profile(arguments: argparse.Namespace) -> tuple[list[RoundFigures], str | None]:
    """The rounds' figures and, with `--profile`, the rendered profile of one more round."""
    from gateway.app import create_app  # noqa: PLC0415  (reads the environment set by main)

    app = create_app()
    figures: list[RoundFigures] = []
    rendered: str | None = None
    async with app.lifespan():
        api_key, recipient_id = await _prepared(app)
        post = asgi_post(app, api_key)
        load = {"recipient_id": recipient_id, "payers": arguments.payers}
        for index in range(1, arguments.rounds + 1):
            figures.append(await _round(post, transfers=arguments.transfers, **load))
            _print_round(index, figures[-1])
        if arguments.profile is not None:
            html = arguments.profile.suffix == ".html"
            rendered = await _profiled_round(post, arguments.transfers, load, html=html)
    return figures, rendered


async def _profiled_round(post: Post, transfers: int, load: dict[str, Any], *, html: bool) -> str:
    profiler = Profiler(async_mode="disabled")  # Every payer's stack, not one task's.
    profiler.start()
    try:
        await _round(post, transfers=transfers, **load)
    finally:
        profiler.stop()
    return profiler.output_html() if html else profiler.output_text(unicode=True)


def _print_round(index: int, figures: RoundFigures) -> None:
    print(
        f"round {index}: quote {figures.quote_cpu_ms:.3f} ms CPU, "
        f"transfer {figures.transfer_cpu_ms:.3f} ms CPU, "
        f"{figures.transfers_per_second:,.0f} transfers/s in-process",
        flush=True,
    )


def _bounded(name: str, upper: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if not 1 <= value <= upper:
            raise argparse.ArgumentTypeError(f"{name} must be in 1..{upper}")
        return value

    return parse


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--payers", type=_bounded("--payers", payers_max), default=32)
    parser.add_argument(
        "--transfers",
        type=_bounded("--transfers", transfers_max),
        default=3_000,
        help="per round (each with its quote)",
    )
    parser.add_argument("--rounds", type=_bounded("--rounds", rounds_max), default=3)
    parser.add_argument("--profile", type=Path, help="pyinstrument's profile of one more round")
    arguments = parser.parse_args(argv)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Not one line per setup call.
    with (
        tempfile.TemporaryDirectory(prefix="kovra-profile-") as name,
        bench_environment(Path(name)) as environment,
        shared_ledger(environment, Path(name)),
    ):
        os.environ.update(environment)
        figures, rendered = uvloop.run(profile(arguments))
    if rendered is not None:
        arguments.profile.write_text(rendered)
        print(f"profile of one more round (quotes and transfers) in {arguments.profile}")
    print(
        f"minimum of {len(figures)} round(s), {arguments.payers} payers: "
        f"quote {min(f.quote_cpu_ms for f in figures):.3f} ms CPU, "
        f"transfer {min(f.transfer_cpu_ms for f in figures):.3f} ms CPU"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
