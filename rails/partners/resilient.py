"""Any partner behind what a network dependency needs (`rails.resilience.Guard`), as the
mandate providers are: a timeout per try, retries with exponential backoff and full jitter,
and a circuit breaker (one per partner).

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
from collections.abc import Awaitable, Callable

from ledger.invariants import ensure
from rails.adapter import CircuitBreaker, RetryPolicy
from rails.partners.partner import (
    Partner,
    PartnerAdapter,
    PartnerOrder,
    PartnerReceipt,
    PartnerRejected,
    PartnerUnavailable,
)
from rails.resilience import Guard, timeout_ms_default


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
        self._inner = inner
        self._guard = Guard(
            breaker=breaker,
            retry=retry,
            timeout_ms=timeout_ms,
            sleep=sleep,
            random=random,
            answers=(PartnerRejected,),
        )

    @property
    def inner(self) -> Partner:
        return self._inner

    @property
    def breaker(self) -> CircuitBreaker:
        return self._guard.breaker

    @property
    def adapter(self) -> PartnerAdapter:
        return self._inner.adapter

    async def send(self, order: PartnerOrder) -> PartnerReceipt:
        """The partner's receipt, tried up to the policy's count; `PartnerRejected` as soon
        as the partner refuses; `PartnerUnavailable` when it never answered or the breaker
        refused. Programmer errors propagate untouched."""

        def unavailable(reason: str) -> PartnerUnavailable:
            return PartnerUnavailable(f"order {order.order_id:#x}: {reason}")

        receipt = await self._guard.call(lambda: self._inner.send(order), unavailable=unavailable)
        ensure(receipt.order_id == order.order_id, "a receipt is for the order sent")
        return receipt
