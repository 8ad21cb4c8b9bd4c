"""The one interface every regional rail sits behind, and the resilience around it (SPEC §6).

The lifecycle never talks to a rail directly: it hands `RailSubmission`s (each one pacs.008
for one attempt of one transfer) to a `RailAdapter` and gets one `RailResponse` per
submission back: accepted, rejected with its ISO reason, or no answer. The lifecycle worker
drives transfers in batches, so the interface takes a batch (`submit_batch`, at most
`rail_batch_size_max` submissions, one round trip to the rail) and answers it item by item in
the same order; `submit` is the batch of one. `ResilientRail` wraps any adapter with what a
network dependency needs, applied to the batch as a whole, since a batch is one call:

- a timeout per try: a rail that does not answer in time is `no_answer` for every item, not
  an error. The rail may have received the payments, so the batch is not retried here; the
  lifecycle moves the transfers to `pending_rail` and retries later with
  `next_attempt_delay_ms`;
- retries with exponential backoff and full jitter when the adapter raises (connection
  refused, reset, TLS failure...): the batch did not get an answer and is resent, each
  payment under the same end-to-end id, so the rail can deduplicate it;
- a circuit breaker, so a rail that keeps failing is not hammered, and callers learn at
  once (`RailUnavailable`) that they should try later.
"""

from __future__ import annotations

import asyncio
import random as _random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal, Protocol

import msgspec

from ledger.invariants import InvariantViolation, ensure, unreachable
from rails.corridors import Rail

# The lifecycle worker's schedule for `pending_rail` retries: 1 s, then doubling, capped at 5
# minutes, each drawn with full jitter so a rail coming back is not hit by a synchronized herd.
pending_rail_base_ms = 1_000
pending_rail_cap_ms = 300_000
# Defaults for a rail's circuit breaker and per-try timeout (callers may tune per rail).
failure_threshold_default = 5
reset_timeout_ms_default = 30_000
rail_timeout_ms_default = 10_000
# Doubling stops after this many steps: 2**32 times any base is beyond every sensible cap,
# and an attempt counter in the millions must not compute a million-bit integer.
backoff_doublings_max = 32
transfer_id_bits = 128
# The most submissions one call to a rail carries: about what the lifecycle worker claims in
# one pass. Callers with more split them into chunks of this size.
rail_batch_size_max = 1_000
milliseconds_per_second = 1_000

Outcome = Literal["accepted", "rejected", "no_answer"]
BreakerState = Literal["closed", "open", "half_open"]


class RailSubmission(msgspec.Struct, frozen=True, kw_only=True):
    """One attempt at sending one transfer's pacs.008 to its rail."""

    transfer_id: int  # Kovra's transfer (128-bit).
    attempt: int  # 1, 2, 3... persisted by the caller, so it survives restarts.
    rail: Rail
    end_to_end_id: str
    reference: str  # The tenant's payment reference (the sandbox rails key on it).
    pacs008: bytes  # The validated message.

    def __post_init__(self) -> None:
        ensure(self.attempt >= 1, f"rail attempts count from 1, not {self.attempt}")
        ensure(
            0 <= self.transfer_id < 1 << transfer_id_bits,
            f"a transfer id is an unsigned {transfer_id_bits}-bit integer",
        )


class RailResponse(msgspec.Struct, frozen=True, kw_only=True):
    """What the rail said: accepted, rejected (with the ISO reason), or nothing in time."""

    outcome: Outcome
    reason_code: str | None  # The ISO reason on rejection (e.g. AC04).
    pacs002: bytes | None  # The status report received, if any.

    def __post_init__(self) -> None:
        if self.outcome == "no_answer":
            ensure(
                self.reason_code is None and self.pacs002 is None,
                "no answer carries neither a reason nor a status report",
            )


class RailUnavailable(Exception):
    """The circuit is open or the rail keeps failing: nothing was answered, try later."""


class RailAdapter(Protocol):
    """A rail: sends submissions, returns the rail's answers or raises on transport failure."""

    async def submit(self, submission: RailSubmission) -> RailResponse:
        """The rail's answer to one submission."""
        ...

    async def submit_batch(self, submissions: Sequence[RailSubmission]) -> list[RailResponse]:
        """One answer per submission, in their order, from one call to the rail. At most
        `rail_batch_size_max` submissions; raises `RailUnavailable` when the batch as a whole
        got no answer."""
        ...


def no_answers(count: int) -> list[RailResponse]:
    """`count` silences: what a batch the rail did not answer in time gets."""
    return [RailResponse(outcome="no_answer", reason_code=None, pacs002=None)] * count


def _described(submissions: Sequence[RailSubmission]) -> str:
    """The rails and transfers of a batch, for an error message."""
    rails = ", ".join(sorted({submission.rail.value for submission in submissions}))
    first = submissions[0].transfer_id
    if len(submissions) == 1:
        return f"{rails}: transfer {first:#x}"
    return f"{rails}: {len(submissions)} transfers (the first {first:#x})"


def backoff_ceiling_ms(attempt: int, *, base_ms: int, cap_ms: int) -> int:
    """The largest delay before retry `attempt`: `base_ms` doubled per attempt, capped."""
    ensure(attempt >= 1, f"attempts count from 1, not {attempt}")
    ensure(0 <= base_ms <= cap_ms, f"backoff needs 0 <= base ({base_ms}) <= cap ({cap_ms})")
    return min(cap_ms, base_ms << min(attempt - 1, backoff_doublings_max))


def next_attempt_delay_ms(
    attempt: int,
    *,
    base_ms: int = pending_rail_base_ms,
    cap_ms: int = pending_rail_cap_ms,
    random: Callable[[], float] = _random.random,
) -> int:
    """How long to wait before retry `attempt` (1 = first retry): full jitter over the
    exponential ceiling, i.e. uniform in [0, min(cap, base * 2**(attempt-1))]."""
    ceiling = backoff_ceiling_ms(attempt, base_ms=base_ms, cap_ms=cap_ms)
    draw = random()
    ensure(0.0 <= draw <= 1.0, f"jitter draws lie in [0, 1], not {draw}")
    return min(ceiling, int(draw * ceiling))


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How often `ResilientRail` tries a submission whose adapter raised, and how it waits.

    `attempts_max` counts every try, the first included: 3 means one try and two retries.
    """

    attempts_max: int = 3
    base_delay_ms: int = 100
    delay_max_ms: int = 5_000

    def __post_init__(self) -> None:
        ensure(self.attempts_max >= 1, "a retry policy allows at least one try")
        ensure(
            0 <= self.base_delay_ms <= self.delay_max_ms,
            "a retry policy needs 0 <= base_delay_ms <= delay_max_ms",
        )

    def delay_ms(self, attempt: int, *, random: Callable[[], float] = _random.random) -> int:
        """The wait after failed try `attempt`: exponential with full jitter, bounded."""
        return next_attempt_delay_ms(
            attempt, base_ms=self.base_delay_ms, cap_ms=self.delay_max_ms, random=random
        )


class CircuitBreaker:
    """Closed, then open after `failure_threshold` consecutive failures; after
    `reset_timeout_ms` it half-opens and lets exactly one probe through: the probe's success
    closes it, its failure re-opens it for another `reset_timeout_ms`.

    `clock` returns monotonic seconds (injected by tests). Outcomes are reported by the caller
    with `record_success`, `record_failure` or, when a call ended without telling anything
    about the rail (cancelled, timed out), `record_neutral`, which frees the probe slot.
    """

    def __init__(
        self,
        *,
        failure_threshold: int = failure_threshold_default,
        reset_timeout_ms: int = reset_timeout_ms_default,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        ensure(failure_threshold >= 1, "a breaker opens after at least one failure")
        ensure(reset_timeout_ms >= 0, "a breaker's cooldown is not negative")
        self._failure_threshold = failure_threshold
        self._reset_timeout_s = reset_timeout_ms / milliseconds_per_second
        self._clock = clock
        self._state: BreakerState = "closed"
        self._consecutive_failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False

    def state(self) -> BreakerState:
        """The state as of now: an open breaker whose cooldown has passed reads half-open."""
        if self._state == "open" and self._cooled_down():
            return "half_open"
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive_failures

    def _cooled_down(self) -> bool:
        return self._clock() - self._opened_at >= self._reset_timeout_s

    def allow(self) -> bool:
        """Whether a call may go through now; in half-open, only one (the probe) may."""
        if self._state == "open" and self._cooled_down():
            self._state = "half_open"
            self._probe_in_flight = False
        if self._state == "closed":
            return True
        if self._state == "half_open" and not self._probe_in_flight:
            self._probe_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        """The rail answered. Closes a half-open breaker; an open one waits its cooldown."""
        if self._state == "open":
            return  # A call admitted before the breaker opened: the cooldown still applies.
        self._state = "closed"
        self._consecutive_failures = 0
        self._probe_in_flight = False

    def record_failure(self) -> None:
        """The rail failed. Opens the breaker at the threshold, or at once when half-open."""
        if self._state == "open":
            return
        self._consecutive_failures += 1
        if self._state == "half_open" or self._consecutive_failures >= self._failure_threshold:
            self._state = "open"
            self._opened_at = self._clock()
            self._probe_in_flight = False

    def record_neutral(self) -> None:
        """The call ended without evidence either way: a half-open breaker may probe again."""
        if self._state == "half_open":
            self._probe_in_flight = False


class ResilientRail(RailAdapter):
    """Any `RailAdapter` behind a circuit breaker, a per-try timeout and retries."""

    def __init__(
        self,
        inner: RailAdapter,
        *,
        breaker: CircuitBreaker,
        retry: RetryPolicy,
        timeout_ms: int,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
    ) -> None:
        ensure(timeout_ms > 0, "a rail's timeout is positive")
        self._inner = inner
        self._breaker = breaker
        self._retry = retry
        self._timeout_s = timeout_ms / milliseconds_per_second
        self._sleep = sleep
        self._random = random

    @property
    def breaker(self) -> CircuitBreaker:
        return self._breaker

    async def submit(self, submission: RailSubmission) -> RailResponse:
        """The rail's answer to one submission: `submit_batch` of one."""
        (response,) = await self.submit_batch([submission])
        return response

    async def submit_batch(self, submissions: Sequence[RailSubmission]) -> list[RailResponse]:
        """The rail's answers, or `no_answer` for every item when the batch stays silent past
        the timeout.

        Raises `RailUnavailable` when the breaker is open (the rail is not called) or when
        every try raised. Programmer errors (`InvariantViolation`) propagate untouched.
        """
        ensure(
            len(submissions) <= rail_batch_size_max,
            f"a rail batch holds at most {rail_batch_size_max} submissions, not "
            f"{len(submissions)}: callers chunk",
        )
        if not submissions:
            return []
        last_error: Exception | None = None
        for try_number in range(1, self._retry.attempts_max + 1):
            if not self._breaker.allow():
                raise RailUnavailable(
                    f"{_described(submissions)}: circuit open, not sent"
                ) from last_error
            try:
                return await self._try_once(submissions)
            except InvariantViolation:
                raise
            except Exception as error:
                last_error = error
            if try_number < self._retry.attempts_max:
                delay_ms = self._retry.delay_ms(try_number, random=self._random)
                await self._sleep(delay_ms / milliseconds_per_second)
        raise RailUnavailable(
            f"{_described(submissions)}: {self._retry.attempts_max} tries failed"
        ) from last_error

    async def _try_once(self, submissions: Sequence[RailSubmission]) -> list[RailResponse]:
        """One try, its outcome reported to the breaker whatever happens (even cancellation)."""
        try:
            async with asyncio.timeout(self._timeout_s) as deadline:
                responses = await self._inner.submit_batch(submissions)
        except TimeoutError:
            if not deadline.expired():
                self._breaker.record_failure()  # The adapter's own timeout: a transport error.
                raise
            # Silence is not a transport failure: the payments may have reached the rail. The
            # breaker neither trips nor closes on it; the lifecycle moves to `pending_rail`.
            self._breaker.record_neutral()
            return no_answers(len(submissions))
        except InvariantViolation:
            self._breaker.record_neutral()
            raise
        except Exception:
            self._breaker.record_failure()
            raise
        except BaseException:
            self._breaker.record_neutral()  # Cancelled: the probe slot must not stay taken.
            raise
        if len(responses) != len(submissions):
            self._breaker.record_neutral()  # The adapter's bug, not the rail's health.
            unreachable(
                f"a rail adapter answered {len(responses)} times to {len(submissions)} submissions"
            )
        self._breaker.record_success()
        return responses
