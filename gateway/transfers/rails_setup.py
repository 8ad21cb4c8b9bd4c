"""The rails every transfer goes through, chosen by environment, one adapter per corridor.

Each corridor (EU, UK, ID) has its own adapter behind its own circuit breaker, timeouts and
retries, so a failing UK rail never stops EU payouts: the router sends a batch's
submissions to their corridors' adapters at the same time and answers them in the batch's
order, with None for those whose rail is unavailable, for the worker to try later. The
sandbox serves the simulated rails of SPEC §6; they remember the payments they received in
the worker's Redis (`rails.redis_memory`), so a payment sent again by any worker, after any
crash, is answered as the first time and paid once. Production has no bank connections in
this codebase yet, so the transfer worker refuses to start there rather than pretend.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from redis.asyncio import Redis

from gateway.settings import Settings
from ledger.invariants import ensure
from rails.adapter import (
    CircuitBreaker,
    RailAdapter,
    RailResponse,
    RailSubmission,
    RailUnavailable,
    ResilientRail,
    RetryPolicy,
    rail_batch_size_max,
)
from rails.corridors import Corridor, Rail
from rails.redis_memory import RedisRailMemory
from rails.sandbox import SandboxRail

rail_timeout_ms = 5_000
# The most submissions one `CorridorRouter.submit_batch` takes: ten rail batches, so a call
# has a bounded number of chunks in flight at once (the worker claims about one rail batch).
router_batch_size_max = 10 * rail_batch_size_max
sandbox_latency_ms_min = 20
corridor_of_rail: Mapping[Rail, Corridor] = {
    Rail.SEPA_INSTANT: Corridor.EU,
    Rail.SEPA_CREDIT_TRANSFER: Corridor.EU,
    Rail.FASTER_PAYMENTS: Corridor.UK,
    Rail.CHAPS: Corridor.UK,
    Rail.BI_FAST: Corridor.ID,
    Rail.RTGS: Corridor.ID,
}
ensure(set(corridor_of_rail) == set(Rail), "every rail belongs to a corridor")


class NoRailConfigured(RuntimeError):
    """Production needs real rail adapters, which are not part of this build."""


class CorridorRouter:
    """The corridors' adapters behind one front: each submission goes to its own corridor's."""

    def __init__(self, adapters: Mapping[Corridor, RailAdapter]) -> None:
        ensure(set(adapters) == set(Corridor), "every corridor has an adapter")
        self._adapters = dict(adapters)

    def adapter(self, corridor: Corridor) -> RailAdapter:
        return self._adapters[corridor]

    async def submit(self, submission: RailSubmission) -> RailResponse:
        """One submission's answer; raises `RailUnavailable` when its corridor's rail is."""
        return await self._adapters[corridor_of_rail[submission.rail]].submit(submission)

    async def submit_batch(
        self, submissions: Sequence[RailSubmission]
    ) -> list[RailResponse | None]:
        """One answer per submission, in their order: each corridor's submissions go to its
        adapter in chunks of at most `rail_batch_size_max`, every chunk at the same time, so
        a slow rail delays only its own. None for each submission of a chunk whose rail is
        unavailable (`RailUnavailable`): nothing was answered, the caller tries later.

        Any other error from an adapter (a bug) is raised once every chunk has finished.
        """
        ensure(
            len(submissions) <= router_batch_size_max,
            f"a router batch holds at most {router_batch_size_max} submissions, "
            f"not {len(submissions)}",
        )
        chunks = _chunks_by_corridor(submissions)
        results = await asyncio.gather(
            *(self._send(corridor, [submissions[i] for i in chunk]) for corridor, chunk in chunks),
            return_exceptions=True,
        )
        answers: list[RailResponse | None] = [None] * len(submissions)
        for (_, chunk), result in zip(chunks, results, strict=True):
            if isinstance(result, BaseException):
                raise result
            for index, answer in zip(chunk, result, strict=True):
                answers[index] = answer
        return answers

    async def _send(
        self, corridor: Corridor, submissions: list[RailSubmission]
    ) -> list[RailResponse | None]:
        """One chunk's answers from its corridor's adapter, or None for each if unavailable."""
        try:
            answers = await self._adapters[corridor].submit_batch(submissions)
        except RailUnavailable:
            return [None] * len(submissions)
        ensure(
            len(answers) == len(submissions),
            f"the {corridor.value} rail answered {len(answers)} of {len(submissions)} submissions",
        )
        return list(answers)


def _chunks_by_corridor(
    submissions: Sequence[RailSubmission],
) -> list[tuple[Corridor, list[int]]]:
    """The submissions' positions, grouped by corridor in their order, in chunks of at most
    `rail_batch_size_max`."""
    by_corridor: dict[Corridor, list[int]] = {}
    for index, submission in enumerate(submissions):
        by_corridor.setdefault(corridor_of_rail[submission.rail], []).append(index)
    return [
        (corridor, positions[start : start + rail_batch_size_max])
        for corridor, positions in by_corridor.items()
        for start in range(0, len(positions), rail_batch_size_max)
    ]


def build_rail(settings: Settings, *, redis: Redis) -> CorridorRouter:
    """The rails for these settings; the sandbox's remember what they received in `redis`."""
    if not settings.sandbox:
        raise NoRailConfigured(
            "no production rail adapters are configured; run the worker with KOVRA_ENV=sandbox"
        )
    latency_max = settings.sandbox_latency_ms_max
    # One memory for every corridor: its keys name the rail, as each scheme keeps its own.
    memory = RedisRailMemory(redis, window_seconds=settings.sandbox_duplicate_window_seconds)
    return CorridorRouter(
        {
            corridor: ResilientRail(
                SandboxRail(
                    memory=memory,
                    latency_ms_min=min(sandbox_latency_ms_min, latency_max),
                    latency_ms_max=latency_max,
                ),
                breaker=CircuitBreaker(),
                retry=RetryPolicy(),
                timeout_ms=rail_timeout_ms,
            )
            for corridor in Corridor
        }
    )
