"""Screening latency: `python -m compliance.sanctions.bench` prints p50/p95/p99 per query.

Compliance must decide within 500 ms p95 and screening runs on every payout, so one query
against a realistic list (20,000+ names) must stay in single-digit milliseconds. The bench
indexes OFAC's SDN sample (`--ofac`, by default the repository's shared copy), tops it up
with made-up names to `--names`, and screens `--queries` names: half listed names with a
misspelling or their tokens reordered, half made-up names that should not match.
`--names 2000 --queries 200` gives a quick look.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import msgspec

from compliance.sanctions.lists import SanctionedParty, load_ofac
from compliance.sanctions.screening import SanctionsIndex

names_default = 20_000
queries_default = 2_000
seed_default = 20_261_121
ofac_default = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "ofac"
synthetic_list_name = "BENCH"
letters = "abcdefghijklmnopqrstuvwxyz"

_listed_syllables = ("ka", "ro", "mi", "tes", "dan", "vo", "lu", "bar", "zi", "nok", "she", "ta")
_free_syllables = ("pe", "gu", "lin", "fa", "dor", "wi", "som", "ye", "chu", "ri", "bel", "ox")


class BenchResult(msgspec.Struct, frozen=True, kw_only=True):
    parties: int
    names: int
    build_seconds: float
    queries: int
    hit_rate: float
    latency_ms_p50: float
    latency_ms_p95: float
    latency_ms_p99: float
    latency_ms_max: float


def _percentile(samples: Sequence[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def made_up_name(rng: random.Random, syllables: Sequence[str]) -> str:
    """A name of two or three tokens, each of two or three syllables."""
    tokens = (
        "".join(rng.choices(syllables, k=rng.randint(2, 3))) for _ in range(rng.randint(2, 3))
    )
    return " ".join(token.capitalize() for token in tokens)


def _synthetic_parties(rng: random.Random, count: int) -> list[SanctionedParty]:
    return [
        SanctionedParty(
            list_name=synthetic_list_name,
            entry_id=str(number),
            name=made_up_name(rng, _listed_syllables),
            kind="individual",
        )
        for number in range(count)
    ]


def bench_parties(ofac: Path | None, names: int, rng: random.Random) -> list[SanctionedParty]:
    """OFAC's sample if present, topped up with made-up parties to `names` names."""
    parties = load_ofac(ofac) if ofac is not None and ofac.is_dir() else []
    present = sum(len(party.names) for party in parties)
    return parties + _synthetic_parties(rng, max(0, names - present))


def _misspelt(rng: random.Random, name: str) -> str:
    position = rng.randrange(len(name))
    if rng.random() < 0.5:
        tokens = name.replace(",", " ").split()
        return " ".join(rng.sample(tokens, len(tokens)))
    return name[:position] + rng.choice(letters) + name[position + 1 :]


def bench_queries(rng: random.Random, parties: Sequence[SanctionedParty], count: int) -> list[str]:
    """`count` names: listed ones, altered, alternating with made-up ones."""
    listed = [name for party in parties for name in party.names]
    return [
        _misspelt(rng, rng.choice(listed))
        if number % 2 == 0
        else made_up_name(rng, _free_syllables)
        for number in range(count)
    ]


def run(*, ofac: Path | None, names: int, queries: int, seed: int) -> BenchResult:
    """Build the index, screen the queries and measure each screening."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not a secret.
    parties = bench_parties(ofac, names, rng)
    started = time.perf_counter()
    index = SanctionsIndex.build(parties)
    build_seconds = time.perf_counter() - started
    latencies: list[float] = []
    hits = 0
    for query in bench_queries(rng, parties, queries):
        started = time.perf_counter()
        found = index.screen(query)
        latencies.append((time.perf_counter() - started) * 1000)
        hits += bool(found)
    return BenchResult(
        parties=index.party_count,
        names=index.name_count,
        build_seconds=round(build_seconds, 3),
        queries=len(latencies),
        hit_rate=round(hits / max(1, len(latencies)), 3),
        latency_ms_p50=round(_percentile(latencies, 0.50), 3),
        latency_ms_p95=round(_percentile(latencies, 0.95), 3),
        latency_ms_p99=round(_percentile(latencies, 0.99), 3),
        latency_ms_max=round(max(latencies), 3),
    )


def report(result: BenchResult) -> str:
    return (
        f"index: {result.parties} parties, {result.names} names, "
        f"built in {result.build_seconds:.2f} s\n"
        f"screening {result.queries} queries (hit rate {result.hit_rate:.1%}): "
        f"p50 {result.latency_ms_p50:.3f} ms, p95 {result.latency_ms_p95:.3f} ms, "
        f"p99 {result.latency_ms_p99:.3f} ms, max {result.latency_ms_max:.3f} ms\n"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--ofac", type=Path, default=ofac_default, help="OFAC SDN CSV folder")
    parser.add_argument("--names", type=int, default=names_default, help="names indexed, min")
    parser.add_argument("--queries", type=int, default=queries_default)
    parser.add_argument("--seed", type=int, default=seed_default)
    arguments = parser.parse_args(argv)
    result = run(
        ofac=arguments.ofac, names=arguments.names, queries=arguments.queries, seed=arguments.seed
    )
    sys.stdout.write(report(result))


if __name__ == "__main__":
    main()
