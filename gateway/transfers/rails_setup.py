"""The rails every transfer goes through, chosen by environment, one adapter per corridor.

Each corridor (EU, UK, ID) has its own adapter behind its own circuit breaker, timeouts and
retries, so a failing UK rail never stops EU payouts. The sandbox serves the simulated
rails of SPEC §6; they remember the payments they received in the worker's Redis
(`rails.redis_memory`), so a payment sent again by any worker, after any crash, is answered
as the first time and paid once. Production has no bank connections in this codebase yet,
so the transfer worker refuses to start there rather than pretend.
"""

from __future__ import annotations

from collections.abc import Mapping

from redis.asyncio import Redis

from gateway.settings import Settings
from ledger.invariants import ensure
from rails.adapter import (
    CircuitBreaker,
    RailAdapter,
    RailResponse,
    RailSubmission,
    ResilientRail,
    RetryPolicy,
)
from rails.corridors import Corridor, Rail
from rails.redis_memory import RedisRailMemory
from rails.sandbox import SandboxRail

rail_timeout_ms = 5_000
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
    """One `RailAdapter` over the corridors' adapters: each submission goes to its own."""

    def __init__(self, adapters: Mapping[Corridor, RailAdapter]) -> None:
        ensure(set(adapters) == set(Corridor), "every corridor has an adapter")
        self._adapters = dict(adapters)

    def adapter(self, corridor: Corridor) -> RailAdapter:
        return self._adapters[corridor]

    async def submit(self, submission: RailSubmission) -> RailResponse:
        return await self._adapters[corridor_of_rail[submission.rail]].submit(submission)


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
