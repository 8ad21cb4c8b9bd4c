"""Any mandate provider behind what a network dependency needs, as `rails.adapter.ResilientRail`
gives the payout rails: a timeout per try, retries with exponential backoff and full jitter,
and a circuit breaker.

Unlike a rail, a provider keys every operation on Kovra's ids (the mandate's, the
collection's), so sending a request again is safe: a try that raises or stays silent past
`timeout_ms` is retried, and counts as a failure for the breaker. When every try failed, or
the breaker is open (the provider is not called), the call raises `ProviderUnavailable` and
the caller tries later. The scheme's rules (`validate_bank_details`, reason codes) are local
and pass straight through.
"""

from __future__ import annotations

import asyncio
import random as _random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

import msgspec

from ledger.invariants import InvariantViolation, ensure
from rails.adapter import (
    CircuitBreaker,
    RetryPolicy,
    failure_threshold_default,
    reset_timeout_ms_default,
)
from rails.collections.provider import (
    CollectionLookup,
    CollectionRequest,
    CollectionRun,
    MandateAnswer,
    MandateProvider,
    MandateRequest,
    ProviderName,
    ProviderUnavailable,
    provider_batch_size_max,
)

timeout_ms_default = 10_000
milliseconds_per_second = 1_000
Result = TypeVar("Result")


class Resilience(msgspec.Struct, frozen=True, kw_only=True):
    """How a provider is guarded: the per-try timeout, the retries, and its breaker's
    threshold and cooldown (each provider gets a breaker of its own)."""

    timeout_ms: int = timeout_ms_default
    retry: RetryPolicy = msgspec.field(default_factory=RetryPolicy)
    failure_threshold: int = failure_threshold_default
    reset_timeout_ms: int = reset_timeout_ms_default

    def __post_init__(self) -> None:
        ensure(self.timeout_ms > 0, "a provider's timeout is positive")

    def breaker(self, clock: Callable[[], float] = time.monotonic) -> CircuitBreaker:
        return CircuitBreaker(
            failure_threshold=self.failure_threshold,
            reset_timeout_ms=self.reset_timeout_ms,
            clock=clock,
        )


class ResilientProvider:
    """A `MandateProvider` wrapping another with a breaker, a per-try timeout and retries."""

    def __init__(
        self,
        inner: MandateProvider,
        *,
        breaker: CircuitBreaker,
        retry: RetryPolicy,
        timeout_ms: int = timeout_ms_default,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
        passthrough: tuple[type[Exception], ...] = (),
    ) -> None:
        ensure(timeout_ms > 0, "a provider's timeout is positive")
        self._inner = inner
        self._breaker = breaker
        self._retry = retry
        self._timeout_s = timeout_ms / milliseconds_per_second
        self._sleep = sleep
        self._random = random
        # Answers that are not failures of the provider (an unknown reference on a lookup):
        # they propagate at once and count as a success for the breaker.
        self._passthrough = passthrough

    @property
    def inner(self) -> MandateProvider:
        return self._inner

    @property
    def breaker(self) -> CircuitBreaker:
        return self._breaker

    @property
    def name(self) -> ProviderName:
        return self._inner.name

    @property
    def currency(self) -> str:
        return self._inner.currency

    def validate_bank_details(self, bank_details: Mapping[str, str]) -> dict[str, str]:
        return self._inner.validate_bank_details(bank_details)

    def reason_description(self, reason_code: str) -> str:
        return self._inner.reason_description(reason_code)

    def is_mandate_fatal(self, reason_code: str) -> bool:
        return self._inner.is_mandate_fatal(reason_code)

    async def create_mandates(self, requests: Sequence[MandateRequest]) -> list[MandateAnswer]:
        _ensure_batch(len(requests))
        if not requests:
            return []
        answers = await self._call("create_mandates", lambda: self._inner.create_mandates(requests))
        ensure(len(answers) == len(requests), "a provider answers every mandate request")
        return answers

    async def collect(self, requests: Sequence[CollectionRequest]) -> CollectionRun:
        _ensure_batch(len(requests))
        if not requests:
            return CollectionRun(answers=[], message=None)
        run = await self._call("collect", lambda: self._inner.collect(requests))
        ensure(len(run.answers) == len(requests), "a provider answers every collection request")
        return run

    async def lookup_collection(self, provider_reference: str) -> CollectionLookup:
        return await self._call(
            "lookup_collection", lambda: self._inner.lookup_collection(provider_reference)
        )

    async def deactivate_mandate(self, provider_reference: str) -> None:
        await self._call(
            "deactivate_mandate", lambda: self._inner.deactivate_mandate(provider_reference)
        )

    async def balance(self, provider_reference: str) -> int | None:
        return await self._call("balance", lambda: self._inner.balance(provider_reference))

    async def _call(self, operation: str, attempt: Callable[[], Awaitable[Result]]) -> Result:
        """`attempt` tried up to the policy's count; `ProviderUnavailable` when it never
        answered or the breaker refused. Programmer errors propagate untouched."""
        last_error: BaseException | None = None
        for try_number in range(1, self._retry.attempts_max + 1):
            if not self._breaker.allow():
                raise ProviderUnavailable(
                    f"{self.name.value} {operation}: circuit open, not sent"
                ) from last_error
            try:
                return await self._try_once(attempt)
            except InvariantViolation:
                raise
            except Exception as error:
                if isinstance(error, self._passthrough):
                    raise
                last_error = error
            if try_number < self._retry.attempts_max:
                delay_ms = self._retry.delay_ms(try_number, random=self._random)
                await self._sleep(delay_ms / milliseconds_per_second)
        raise ProviderUnavailable(
            f"{self.name.value} {operation}: {self._retry.attempts_max} tries failed"
        ) from last_error

    async def _try_once(self, attempt: Callable[[], Awaitable[Result]]) -> Result:
        """One try, its outcome told to the breaker whatever happens (even cancellation)."""
        try:
            async with asyncio.timeout(self._timeout_s):
                result = await attempt()
        except InvariantViolation:
            self._breaker.record_neutral()
            raise
        except self._passthrough:
            self._breaker.record_success()
            raise
        except Exception:
            self._breaker.record_failure()  # A timeout included: the provider is idempotent.
            raise
        except BaseException:
            self._breaker.record_neutral()  # Cancelled: the probe slot must not stay taken.
            raise
        self._breaker.record_success()
        return result


def _ensure_batch(size: int) -> None:
    ensure(
        size <= provider_batch_size_max,
        f"a provider batch holds at most {provider_batch_size_max} requests, not {size}",
    )
