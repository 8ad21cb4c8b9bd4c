"""What every idempotent call to a network peer needs (a mandate provider, a partner): a
timeout per try, retries with exponential backoff and full jitter, and a circuit breaker,
as `rails.adapter.ResilientRail` gives the payout rails.

The peer keys every operation on Kovra's ids, so asking again is safe: a try that raises or
stays silent past `timeout_ms` is retried and counts as a failure for the breaker. Some
exceptions are the peer's answer, not a failure of it (a partner refusing an order, a
provider knowing no such reference): those propagate at once and count as a success. When
every try failed, or the breaker is open (the peer is not called), the call raises the
caller's own "unavailable" error and the caller tries later. Programmer errors
(`InvariantViolation`) propagate untouched and tell the breaker nothing.
"""

from __future__ import annotations

import asyncio
import random as _random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import msgspec

from ledger.invariants import InvariantViolation, ensure
from rails.adapter import (
    CircuitBreaker,
    RetryPolicy,
    failure_threshold_default,
    reset_timeout_ms_default,
)

timeout_ms_default = 10_000
milliseconds_per_second = 1_000
Result = TypeVar("Result")


class Resilience(msgspec.Struct, frozen=True, kw_only=True):
    """How a peer is guarded: the per-try timeout, the retries, and its breaker's threshold
    and cooldown (each peer gets a breaker of its own)."""

    timeout_ms: int = timeout_ms_default
    retry: RetryPolicy = msgspec.field(default_factory=RetryPolicy)
    failure_threshold: int = failure_threshold_default
    reset_timeout_ms: int = reset_timeout_ms_default

    def __post_init__(self) -> None:
        ensure(self.timeout_ms > 0, "a peer's timeout is positive")

    def breaker(self, clock: Callable[[], float] = time.monotonic) -> CircuitBreaker:
        return CircuitBreaker(
            failure_threshold=self.failure_threshold,
            reset_timeout_ms=self.reset_timeout_ms,
            clock=clock,
        )


class Guard:
    """Calls to one peer, each tried under the timeout, the retries and the breaker."""

    def __init__(
        self,
        *,
        breaker: CircuitBreaker,
        retry: RetryPolicy,
        timeout_ms: int = timeout_ms_default,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
        answers: tuple[type[Exception], ...] = (),
    ) -> None:
        ensure(timeout_ms > 0, "a peer's timeout is positive")
        self.breaker = breaker
        self._retry = retry
        self._timeout_s = timeout_ms / milliseconds_per_second
        self._sleep = sleep
        self._random = random
        # Exceptions that are the peer's answer: they propagate and count as a success.
        self._answers = answers

    async def call(
        self,
        attempt: Callable[[], Awaitable[Result]],
        *,
        unavailable: Callable[[str], Exception],
    ) -> Result:
        """`attempt` tried up to the policy's count; `unavailable(reason)` raised when it
        never answered or the breaker refused."""
        last_error: BaseException | None = None
        for try_number in range(1, self._retry.attempts_max + 1):
            if not self.breaker.allow():
                raise unavailable("circuit open, not sent") from last_error
            try:
                return await self._try_once(attempt)
            except InvariantViolation:
                raise
            except Exception as error:
                if isinstance(error, self._answers):
                    raise
                last_error = error
            if try_number < self._retry.attempts_max:
                delay_ms = self._retry.delay_ms(try_number, random=self._random)
                await self._sleep(delay_ms / milliseconds_per_second)
        raise unavailable(f"{self._retry.attempts_max} tries failed ({last_error})") from last_error

    async def _try_once(self, attempt: Callable[[], Awaitable[Result]]) -> Result:
        """One try, its outcome told to the breaker whatever happens (even cancellation)."""
        try:
            async with asyncio.timeout(self._timeout_s):
                result = await attempt()
        except InvariantViolation:
            self.breaker.record_neutral()
            raise
        except self._answers:
            self.breaker.record_success()  # The peer answered: it is up.
            raise
        except Exception:
            self.breaker.record_failure()  # A timeout included: the peer is idempotent.
            raise
        except BaseException:
            self.breaker.record_neutral()  # Cancelled: the probe slot must not stay taken.
            raise
        self.breaker.record_success()
        return result
