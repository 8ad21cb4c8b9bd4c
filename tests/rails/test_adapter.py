"""The resilience every rail sits behind: the circuit breaker opens after N consecutive
failures, refuses at once while open, half-opens after its cooldown for exactly one probe,
closes on the probe's success and re-opens on its failure; an adapter that raises is retried
with exponential, fully jittered, capped backoff and gives `RailUnavailable` after the last
try; a rail that hangs is `no_answer` exactly at the timeout (on a virtual clock) and never
trips the breaker; the `pending_rail` retry delay stays within [0, cap] and its ceiling
doubles up to the cap.

A batch gets the same resilience as one call: its answers come back item by item in its
order; a batch the rail does not answer in time is `no_answer` for every item, once, not
retried; a batch whose adapter raises is resent whole, with backoff, then
`RailUnavailable`; an open breaker refuses it without calling the rail; an adapter that
answers a batch with the wrong number of answers is a bug, not a rail failure; a batch
holds at most `rail_batch_size_max` submissions, and `submit` is the batch of one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.invariants import InvariantViolation
from rails.adapter import (
    CircuitBreaker,
    RailResponse,
    RailSubmission,
    RailUnavailable,
    ResilientRail,
    RetryPolicy,
    backoff_ceiling_ms,
    next_attempt_delay_ms,
    pending_rail_base_ms,
    pending_rail_cap_ms,
    rail_batch_size_max,
)
from rails.corridors import Rail
from tests import virtual_time

threshold = 3
cooldown_ms = 1_000
timeout_ms = 50
accepted = RailResponse(outcome="accepted", reason_code=None, pacs002=b"<ok/>")
rejected = RailResponse(outcome="rejected", reason_code="AC04", pacs002=b"<no/>")
no_answer = RailResponse(outcome="no_answer", reason_code=None, pacs002=None)
submission = RailSubmission(
    transfer_id=(1 << 127) + 42,
    attempt=1,
    rail=Rail.SEPA_INSTANT,
    end_to_end_id="tr_01JD3EXAMPLE",
    reference="INV-2026-0042",
    pacs008=b"<Document/>",  # ResilientRail never reads it.
)


class FakeClock:
    """Monotonic seconds that only move when a test says so."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance_ms(self, milliseconds: int) -> None:
        self.now += milliseconds / 1_000


class RecordingSleep:
    """An injected sleep that returns at once and remembers every delay (seconds)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


class ScriptedRail:
    """An inner adapter that plays a script, one step per call: an answer for every item of
    the batch, a list of answers (one per item), or an exception. It keeps every batch it
    was sent."""

    def __init__(self, *script: RailResponse | list[RailResponse] | Exception) -> None:
        self.script = list(script)
        self.batches: list[list[RailSubmission]] = []

    @property
    def calls(self) -> int:
        return len(self.batches)

    async def submit(self, submission: RailSubmission) -> RailResponse:
        (response,) = await self.submit_batch([submission])
        return response

    async def submit_batch(self, submissions: Sequence[RailSubmission]) -> list[RailResponse]:
        step = self.script[min(self.calls, len(self.script) - 1)]
        self.batches.append(list(submissions))
        if isinstance(step, Exception):
            raise step
        return step if isinstance(step, list) else [step] * len(submissions)


class HangingRail:
    """An inner adapter that never answers (until cancelled)."""

    def __init__(self) -> None:
        self.calls = 0
        self.cancelled = 0
        self.entered = asyncio.Event()

    async def submit(self, submission: RailSubmission) -> RailResponse:
        (response,) = await self.submit_batch([submission])
        return response

    async def submit_batch(self, submissions: Sequence[RailSubmission]) -> list[RailResponse]:
        self.calls += 1
        self.entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        raise AssertionError("unreachable: the event is never set")


def _resilient(
    inner: ScriptedRail | HangingRail,
    *,
    clock: FakeClock | None = None,
    sleep: RecordingSleep | None = None,
    retry: RetryPolicy | None = None,
    random: Callable[[], float] = lambda: 1.0,
    failure_threshold: int = threshold,
) -> ResilientRail:
    breaker = CircuitBreaker(
        failure_threshold=failure_threshold,
        reset_timeout_ms=cooldown_ms,
        clock=clock or FakeClock(),
    )
    return ResilientRail(
        inner,
        breaker=breaker,
        retry=retry or RetryPolicy(attempts_max=1),
        timeout_ms=timeout_ms,
        sleep=sleep or RecordingSleep(),
        random=random,
    )


# Circuit breaker.


def test_breaker_opens_after_consecutive_failures_only() -> None:
    breaker = CircuitBreaker(failure_threshold=threshold, reset_timeout_ms=cooldown_ms)
    for _ in range(threshold - 1):
        breaker.record_failure()
    breaker.record_success()  # A success in between resets the count.
    for _ in range(threshold - 1):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state() == "closed"
    assert breaker.consecutive_failures == threshold - 1
    breaker.record_failure()
    assert breaker.state() == "open"
    assert not breaker.allow()


def test_breaker_half_opens_after_the_cooldown_for_one_probe() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_ms=cooldown_ms, clock=clock)
    breaker.record_failure()
    clock.advance_ms(cooldown_ms - 1)
    assert breaker.state() == "open"
    assert not breaker.allow()
    clock.advance_ms(1)
    assert breaker.state() == "half_open"
    assert breaker.allow()  # The probe.
    assert not breaker.allow()  # Only one.
    assert not breaker.allow()


def test_a_successful_probe_closes_the_breaker() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_ms=cooldown_ms, clock=clock)
    breaker.record_failure()
    clock.advance_ms(cooldown_ms)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state() == "closed"
    assert breaker.consecutive_failures == 0
    assert all(breaker.allow() for _ in range(5))


def test_a_failed_probe_reopens_the_breaker_for_another_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=threshold, reset_timeout_ms=cooldown_ms, clock=clock)
    for _ in range(threshold):
        breaker.record_failure()
    clock.advance_ms(cooldown_ms)
    assert breaker.allow()
    breaker.record_failure()  # One failed probe is enough, whatever the threshold.
    assert breaker.state() == "open"
    assert not breaker.allow()
    clock.advance_ms(cooldown_ms - 1)
    assert not breaker.allow()
    clock.advance_ms(1)
    assert breaker.allow()


def test_outcomes_of_calls_admitted_before_opening_do_not_shorten_the_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_ms=cooldown_ms, clock=clock)
    breaker.record_failure()
    breaker.record_success()  # A slow call that started while the breaker was closed.
    assert breaker.state() == "open"
    clock.advance_ms(cooldown_ms // 2)
    breaker.record_failure()  # Another straggler: does not restart the cooldown.
    clock.advance_ms(cooldown_ms // 2)
    assert breaker.state() == "half_open"


def test_breaker_settings_are_checked() -> None:
    with pytest.raises(InvariantViolation):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(InvariantViolation):
        CircuitBreaker(reset_timeout_ms=-1)


# ResilientRail and the breaker.


async def test_resilient_rail_opens_then_refuses_without_calling_the_rail() -> None:
    inner = ScriptedRail(ConnectionError("refused"))
    rail = _resilient(inner)
    for _ in range(threshold):
        with pytest.raises(RailUnavailable, match="1 tries failed") as failed:
            await rail.submit(submission)
        assert isinstance(failed.value.__cause__, ConnectionError)
    assert rail.breaker.state() == "open"
    with pytest.raises(RailUnavailable, match="circuit open"):
        await rail.submit(submission)
    assert inner.calls == threshold  # Refused without trying the rail, so without waiting.


async def test_resilient_rail_probes_once_after_the_cooldown_and_closes_on_success() -> None:
    clock = FakeClock()
    inner = ScriptedRail(*[ConnectionError("down")] * threshold, accepted)
    rail = _resilient(inner, clock=clock)
    for _ in range(threshold):
        with pytest.raises(RailUnavailable):
            await rail.submit(submission)
    clock.advance_ms(cooldown_ms)
    assert rail.breaker.state() == "half_open"
    assert await rail.submit(submission) == accepted
    assert rail.breaker.state() == "closed"
    assert await rail.submit(submission) == accepted
    assert inner.calls == threshold + 2


async def test_resilient_rail_reopens_when_the_probe_fails() -> None:
    clock = FakeClock()
    inner = ScriptedRail(ConnectionError("still down"))
    rail = _resilient(inner, clock=clock, failure_threshold=1)
    with pytest.raises(RailUnavailable):
        await rail.submit(submission)
    clock.advance_ms(cooldown_ms)
    with pytest.raises(RailUnavailable, match="tries failed"):
        await rail.submit(submission)  # The probe, failing.
    assert rail.breaker.state() == "open"
    with pytest.raises(RailUnavailable, match="circuit open"):
        await rail.submit(submission)
    assert inner.calls == 2


@pytest.mark.parametrize("answer", [accepted, rejected, no_answer])
async def test_every_answer_is_a_success_for_the_breaker(answer: RailResponse) -> None:
    clock = FakeClock()
    inner = ScriptedRail(ConnectionError("blip"), answer)
    rail = _resilient(inner, clock=clock, failure_threshold=1)
    with pytest.raises(RailUnavailable):
        await rail.submit(submission)
    clock.advance_ms(cooldown_ms)
    assert await rail.submit(submission) == answer
    assert rail.breaker.state() == "closed"


async def test_a_cancelled_probe_frees_the_probe_slot() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_ms=cooldown_ms, clock=clock)
    breaker.record_failure()
    clock.advance_ms(cooldown_ms)
    hanging = HangingRail()
    rail = ResilientRail(
        hanging, breaker=breaker, retry=RetryPolicy(attempts_max=1), timeout_ms=60_000
    )
    probe = asyncio.create_task(rail.submit(submission))
    await hanging.entered.wait()
    assert not breaker.allow()  # The probe is in flight.
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert hanging.cancelled == 1
    assert breaker.state() == "half_open"
    assert breaker.allow()  # A new probe may go.


# Retries.


async def test_failures_are_retried_with_exponential_backoff() -> None:
    sleep = RecordingSleep()
    inner = ScriptedRail(OSError("reset"), OSError("reset"), accepted)
    retry = RetryPolicy(attempts_max=3, base_delay_ms=100, delay_max_ms=5_000)
    rail = _resilient(inner, sleep=sleep, retry=retry)
    assert await rail.submit(submission) == accepted
    assert inner.calls == 3
    assert sleep.delays == [0.1, 0.2]  # random() = 1: the ceilings themselves.
    assert rail.breaker.state() == "closed"
    assert rail.breaker.consecutive_failures == 0


async def test_backoff_is_capped() -> None:
    sleep = RecordingSleep()
    inner = ScriptedRail(ConnectionError("down"))
    retry = RetryPolicy(attempts_max=6, base_delay_ms=100, delay_max_ms=300)
    rail = _resilient(inner, sleep=sleep, retry=retry, failure_threshold=100)
    with pytest.raises(RailUnavailable, match="6 tries failed"):
        await rail.submit(submission)
    assert inner.calls == 6
    assert sleep.delays == [0.1, 0.2, 0.3, 0.3, 0.3]


async def test_backoff_is_fully_jittered_within_the_ceilings() -> None:
    sleep = RecordingSleep()
    draws = iter([0.0, 0.5, 0.25, 0.999])
    inner = ScriptedRail(ConnectionError("down"))
    retry = RetryPolicy(attempts_max=5, base_delay_ms=100, delay_max_ms=5_000)
    rail = _resilient(
        inner, sleep=sleep, retry=retry, random=lambda: next(draws), failure_threshold=100
    )
    with pytest.raises(RailUnavailable):
        await rail.submit(submission)
    assert sleep.delays == [0.0, 0.1, 0.1, 0.799]
    ceilings = [backoff_ceiling_ms(n, base_ms=100, cap_ms=5_000) for n in range(1, 5)]
    assert ceilings == [100, 200, 400, 800]
    assert all(0 <= d * 1_000 <= c for d, c in zip(sleep.delays, ceilings, strict=True))


async def test_the_breaker_opening_mid_retry_stops_the_retries() -> None:
    sleep = RecordingSleep()
    inner = ScriptedRail(ConnectionError("down"))
    rail = _resilient(inner, sleep=sleep, retry=RetryPolicy(attempts_max=5), failure_threshold=2)
    with pytest.raises(RailUnavailable, match="circuit open") as refused:
        await rail.submit(submission)
    assert isinstance(refused.value.__cause__, ConnectionError)
    assert inner.calls == 2
    assert len(sleep.delays) == 2


async def test_an_adapters_own_timeout_error_is_a_failure() -> None:
    inner = ScriptedRail(TimeoutError("socket read timed out"), accepted)
    rail = _resilient(inner, retry=RetryPolicy(attempts_max=2))
    assert await rail.submit(submission) == accepted
    assert inner.calls == 2


async def test_programmer_errors_are_not_retried() -> None:
    inner = ScriptedRail(InvariantViolation("bug"))
    rail = _resilient(inner, retry=RetryPolicy(attempts_max=3))
    with pytest.raises(InvariantViolation, match="bug"):
        await rail.submit(submission)
    assert inner.calls == 1
    assert rail.breaker.consecutive_failures == 0


# Timeouts.


def test_a_hanging_rail_is_no_answer_at_the_timeout_and_trips_nothing() -> None:
    """On a virtual clock: each try ends exactly when its timeout is due, however busy the
    machine, with the rail's call cancelled."""
    hanging = HangingRail()
    sleep = RecordingSleep()
    rail = _resilient(hanging, sleep=sleep, retry=RetryPolicy(attempts_max=3), failure_threshold=1)

    async def submit_three_times() -> list[tuple[RailResponse, float]]:
        answers: list[tuple[RailResponse, float]] = []
        for _ in range(3):
            started = virtual_time.now()
            answer = await rail.submit(submission)
            answers.append((answer, virtual_time.now() - started))
        return answers

    answers = virtual_time.run(submit_three_times())
    assert [answer for answer, _ in answers] == [no_answer] * 3
    assert [waited for _, waited in answers] == [pytest.approx(timeout_ms / 1_000)] * 3
    assert hanging.calls == 3  # One try per submit: silence is not retried here.
    assert hanging.cancelled == 3
    assert sleep.delays == []
    assert rail.breaker.state() == "closed"
    assert rail.breaker.consecutive_failures == 0


# Batches.


def _batch(size: int) -> list[RailSubmission]:
    return [_submission(transfer_id=index + 1, attempt=1) for index in range(size)]


async def test_a_batch_is_answered_item_by_item_in_its_order() -> None:
    answers = [accepted, rejected, no_answer, accepted]
    inner = ScriptedRail(answers)
    rail = _resilient(inner)
    batch = _batch(len(answers))
    assert await rail.submit_batch(batch) == answers
    assert inner.batches == [batch]  # One call for the whole batch.
    assert rail.breaker.state() == "closed"


async def test_submit_is_the_batch_of_one() -> None:
    inner = ScriptedRail(rejected)
    assert await _resilient(inner).submit(submission) == rejected
    assert inner.batches == [[submission]]


def test_a_batch_the_rail_does_not_answer_in_time_is_no_answer_for_every_item() -> None:
    """On a virtual clock: the whole batch ends at its one timeout, never retried."""
    hanging = HangingRail()
    sleep = RecordingSleep()
    rail = _resilient(hanging, sleep=sleep, retry=RetryPolicy(attempts_max=3), failure_threshold=1)

    async def submit_once() -> tuple[list[RailResponse], float]:
        started = virtual_time.now()
        answers = await rail.submit_batch(_batch(5))
        return answers, virtual_time.now() - started

    answers, waited = virtual_time.run(submit_once())
    assert answers == [no_answer] * 5
    assert waited == pytest.approx(timeout_ms / 1_000)
    assert (hanging.calls, hanging.cancelled, sleep.delays) == (1, 1, [])
    assert rail.breaker.state() == "closed"
    assert rail.breaker.consecutive_failures == 0


async def test_an_open_breaker_refuses_a_batch_without_calling_the_rail() -> None:
    inner = ScriptedRail(ConnectionError("down"))
    rail = _resilient(inner, failure_threshold=1)
    with pytest.raises(RailUnavailable, match="3 transfers"):
        await rail.submit_batch(_batch(3))
    assert rail.breaker.state() == "open"
    with pytest.raises(RailUnavailable, match="circuit open"):
        await rail.submit_batch(_batch(3))
    assert inner.calls == 1


async def test_a_batch_whose_adapter_raises_is_resent_whole_with_backoff() -> None:
    sleep = RecordingSleep()
    inner = ScriptedRail(OSError("reset"), ConnectionError("refused"), [accepted, rejected])
    retry = RetryPolicy(attempts_max=3, base_delay_ms=100, delay_max_ms=5_000)
    rail = _resilient(inner, sleep=sleep, retry=retry)
    batch = _batch(2)
    assert await rail.submit_batch(batch) == [accepted, rejected]
    assert inner.batches == [batch, batch, batch]
    assert sleep.delays == [0.1, 0.2]
    assert rail.breaker.consecutive_failures == 0


async def test_a_batch_failing_every_try_is_unavailable() -> None:
    sleep = RecordingSleep()
    inner = ScriptedRail(ConnectionError("down"))
    rail = _resilient(inner, sleep=sleep, retry=RetryPolicy(attempts_max=2), failure_threshold=5)
    with pytest.raises(RailUnavailable, match="2 tries failed") as failed:
        await rail.submit_batch(_batch(4))
    assert isinstance(failed.value.__cause__, ConnectionError)
    assert inner.calls == 2
    assert rail.breaker.consecutive_failures == 2


async def test_an_adapter_answering_the_wrong_count_is_a_bug_not_a_rail_failure() -> None:
    inner = ScriptedRail([accepted])
    rail = _resilient(inner, retry=RetryPolicy(attempts_max=3), failure_threshold=1)
    with pytest.raises(InvariantViolation, match="answered 1 times to 2 submissions"):
        await rail.submit_batch(_batch(2))
    assert inner.calls == 1
    assert rail.breaker.state() == "closed"


async def test_batches_are_bounded_and_an_empty_one_calls_nothing() -> None:
    inner = ScriptedRail(accepted)
    rail = _resilient(inner)
    assert await rail.submit_batch([]) == []
    assert len(await rail.submit_batch(_batch(rail_batch_size_max))) == rail_batch_size_max
    with pytest.raises(InvariantViolation, match="callers chunk"):
        await rail.submit_batch(_batch(rail_batch_size_max + 1))
    assert [len(batch) for batch in inner.batches] == [rail_batch_size_max]


# Backoff arithmetic.


@given(
    attempt=st.integers(min_value=1, max_value=10_000),
    base=st.integers(min_value=0, max_value=10_000),
    extra=st.integers(min_value=0, max_value=1_000_000),
    draw=st.floats(min_value=0.0, max_value=1.0),
)
def test_next_attempt_delay_is_bounded(attempt: int, base: int, extra: int, draw: float) -> None:
    cap = base + extra
    delay = next_attempt_delay_ms(attempt, base_ms=base, cap_ms=cap, random=lambda: draw)
    assert 0 <= delay <= backoff_ceiling_ms(attempt, base_ms=base, cap_ms=cap) <= cap


@given(attempt=st.integers(min_value=1, max_value=10_000))
def test_next_attempt_delay_ceiling_doubles_up_to_the_cap(attempt: int) -> None:
    def top(n: int) -> int:
        return next_attempt_delay_ms(n, random=lambda: 1.0)

    expected = min(pending_rail_cap_ms, pending_rail_base_ms * 2 ** min(attempt - 1, 32))
    assert top(attempt) == expected
    assert top(attempt + 1) == min(pending_rail_cap_ms, 2 * top(attempt))
    assert next_attempt_delay_ms(attempt, random=lambda: 0.0) == 0


def test_pending_rail_defaults() -> None:
    tops = [next_attempt_delay_ms(n, random=lambda: 1.0) for n in range(1, 11)]
    assert tops == [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000]
    assert next_attempt_delay_ms(10**9, random=lambda: 1.0) == pending_rail_cap_ms
    assert 0 <= next_attempt_delay_ms(7) <= 64_000  # The real random source.


def test_retry_policy_delays_follow_the_same_rule() -> None:
    retry = RetryPolicy(base_delay_ms=50, delay_max_ms=120)
    assert [retry.delay_ms(n, random=lambda: 1.0) for n in (1, 2, 3)] == [50, 100, 120]
    assert retry.delay_ms(2, random=lambda: 0.5) == 50


def test_bad_settings_and_inputs_are_refused() -> None:
    with pytest.raises(InvariantViolation):
        RetryPolicy(attempts_max=0)
    with pytest.raises(InvariantViolation):
        RetryPolicy(base_delay_ms=10, delay_max_ms=5)
    with pytest.raises(InvariantViolation):
        next_attempt_delay_ms(0)
    with pytest.raises(InvariantViolation):
        next_attempt_delay_ms(1, random=lambda: 1.5)
    with pytest.raises(InvariantViolation):
        ResilientRail(
            ScriptedRail(accepted), breaker=CircuitBreaker(), retry=RetryPolicy(), timeout_ms=0
        )
    with pytest.raises(InvariantViolation):
        _submission(transfer_id=1, attempt=0)
    with pytest.raises(InvariantViolation):
        _submission(transfer_id=1 << 128, attempt=1)
    with pytest.raises(InvariantViolation):
        RailResponse(outcome="no_answer", reason_code="AC04", pacs002=None)


def _submission(*, transfer_id: int, attempt: int) -> RailSubmission:
    return RailSubmission(
        transfer_id=transfer_id,
        attempt=attempt,
        rail=Rail.SEPA_INSTANT,
        end_to_end_id="tr_01JD3EXAMPLE",
        reference="INV-2026-0042",
        pacs008=b"<Document/>",
    )
