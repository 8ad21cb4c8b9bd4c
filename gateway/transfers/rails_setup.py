"""The rail every transfer goes through, chosen by environment.

The sandbox serves the simulated rails of SPEC §6 behind the same circuit breaker,
timeouts and retries a real bank connection gets. Production has no bank connections in
this codebase yet, so the transfer worker refuses to start there rather than pretend.
"""

from __future__ import annotations

from gateway.settings import Settings
from rails.adapter import CircuitBreaker, RailAdapter, ResilientRail, RetryPolicy
from rails.sandbox import SandboxRail

rail_timeout_ms = 5_000


class NoRailConfigured(RuntimeError):
    """Production needs real rail adapters, which are not part of this build."""


def build_rail(settings: Settings) -> RailAdapter:
    if not settings.sandbox:
        raise NoRailConfigured(
            "no production rail adapters are configured; run the worker with KOVRA_ENV=sandbox"
        )
    latency_max = settings.sandbox_latency_ms_max
    return ResilientRail(
        SandboxRail(latency_ms_min=min(20, latency_max), latency_ms_max=latency_max),
        breaker=CircuitBreaker(),
        retry=RetryPolicy(),
        timeout_ms=rail_timeout_ms,
    )
