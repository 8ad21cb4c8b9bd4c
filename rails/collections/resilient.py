"""Any mandate provider behind what a network dependency needs (`rails.resilience.Guard`, as
partners are): a timeout per try, retries with exponential backoff and full jitter, and a
circuit breaker.

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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

from ledger.invariants import ensure
from rails.adapter import CircuitBreaker, RetryPolicy
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
from rails.resilience import Guard, timeout_ms_default

Result = TypeVar("Result")


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
        self._inner = inner
        # Answers that are not failures of the provider (an unknown reference on a lookup)
        # propagate at once and count as a success for the breaker.
        self._guard = Guard(
            breaker=breaker,
            retry=retry,
            timeout_ms=timeout_ms,
            sleep=sleep,
            random=random,
            answers=passthrough,
        )

    @property
    def inner(self) -> MandateProvider:
        return self._inner

    @property
    def breaker(self) -> CircuitBreaker:
        return self._guard.breaker

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
        """`attempt` under the guard; `ProviderUnavailable` when it never answered."""

        def unavailable(reason: str) -> ProviderUnavailable:
            return ProviderUnavailable(f"{self.name.value} {operation}: {reason}")

        return await self._guard.call(attempt, unavailable=unavailable)


def _ensure_batch(size: int) -> None:
    ensure(
        size <= provider_batch_size_max,
        f"a provider batch holds at most {provider_batch_size_max} requests, not {size}",
    )
