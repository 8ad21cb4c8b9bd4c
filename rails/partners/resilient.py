"""Any partner behind what a network dependency needs, as `rails.adapter.ResilientRail` gives
the payout rails and `rails.collections.resilient` the mandate providers: a timeout per try,
retries with exponential backoff and full jitter, and a circuit breaker (one per partner).

A partner keys every order on Kovra's order id, so sending an order again is safe: a try
that raises `PartnerUnavailable` (or anything else: a refused connection, a Redis outage in
the sandbox) or stays silent past `timeout_ms` is retried, and counts as a failure for the
breaker. A `PartnerRejected` is the partner's answer, not a failure of it: it propagates at
once and counts as a success. When every try failed, or the breaker is open (the partner is
not called), the send raises `PartnerUnavailable` and the caller tries later.
"""

from __future__ import annotations

import asyncio
import random as _random
import time
from collections.abc import Awaitable, Callable

import msgspec

from ledger.invariants import InvariantViolation, ensure
from rails.adapter import (
    CircuitBreaker,
    RetryPolicy,
    failure_threshold_default,
    reset_timeout_ms_default,
)
from rails.partners.partner import (
    Partner,
    PartnerAdapter,
    PartnerOrder,
    PartnerReceipt,
    PartnerRejected,
    PartnerUnavailable,
)

timeout_ms_default = 10_000
milliseconds_per_second = 1_000


class Resilience(msgspec.Struct, frozen=True, kw_only=True):
    """How a partner is guarded: the per-try timeout, the retries, and its breaker's
    threshold and cooldown (each partner gets a breaker of its own)."""

    timeout_ms: int = timeout_ms_default
    retry: RetryPolicy = msgspec.field(default_factory=RetryPolicy)
    failure_threshold: int = failure_threshold_default
    reset_timeout_ms: int = reset_timeout_ms_default

    def __post_init__(self) -> None:
        ensure(self.timeout_ms > 0, "a partner's timeout is positive")

    def breaker(self, clock: Callable[[], float] = time.monotonic) -> CircuitBreaker:
        return CircuitBreaker(
            failure_threshold=self.failure_threshold,
            reset_timeout_ms=self.reset_timeout_ms,
            clock=clock,
        )


class ResilientPartner:
    """A `Partner` wrapping another with a breaker, a per-try timeout and retries."""

    def __init__(
        self,
        inner: Partner,
        *,
        breaker: CircuitBreaker,
        retry: RetryPolicy,
        timeout_ms: int = timeout_ms_default,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
    ) -> None:
        ensure(timeout_ms > 0, "a partner's timeout is positive")
        self._inner = inner
        self._breaker = breaker
        self._retry = retry
        self._timeout_s = timeout_ms / milliseconds_per_second
        self._sleep = sleep
        self._random = random

    @property
    def inner(self) -> Partner:
        return self._inner

    @property
    def breaker(self) -> CircuitBreaker:
        return self._breaker

    @property
    def adapter(self) -> PartnerAdapter:
        return self._inner.adapter

    async def send(self, order: PartnerOrder) -> PartnerReceipt:
        """The partner's receipt, tried up to the policy's count; `PartnerRejected` as soon
        as the partner refuses; `PartnerUnavailable` when it never answered or the breaker
        refused. Programmer errors propagate untouched."""
        last_error: BaseException | None = None
        for try_number in range(1, self._retry.attempts_max + 1):
            if not self._breaker.allow():
                raise PartnerUnavailable(
                    f"order {order.order_id:#x}: the partner's circuit is open, not sent"
                ) from last_error
            try:
                return await self._try_once(order)
            except (InvariantViolation, PartnerRejected):
                raise
            except Exception as error:
                last_error = error
            if try_number < self._retry.attempts_max:
                delay_ms = self._retry.delay_ms(try_number, random=self._random)
                await self._sleep(delay_ms / milliseconds_per_second)
        raise PartnerUnavailable(
            f"order {order.order_id:#x}: {self._retry.attempts_max} tries failed ({last_error})"
        ) from last_error

    async def _try_once(self, order: PartnerOrder) -> PartnerReceipt:
        """One try, its outcome told to the breaker whatever happens (even cancellation)."""
        try:
            async with asyncio.timeout(self._timeout_s):
                receipt = await self._inner.send(order)
        except InvariantViolation:
            self._breaker.record_neutral()
            raise
        except PartnerRejected:
            self._breaker.record_success()  # The partner answered: it is up.
            raise
        except Exception:
            self._breaker.record_failure()  # A timeout included: the partner is idempotent.
            raise
        except BaseException:
            self._breaker.record_neutral()  # Cancelled: the probe slot must not stay taken.
            raise
        self._breaker.record_success()
        ensure(receipt.order_id == order.order_id, "a receipt is for the order sent")
        return receipt
