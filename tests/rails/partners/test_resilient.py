"""The resilient wrapper around a partner: a send that fails (unavailable, or a transport
error) is retried with exponential backoff and full jitter and answers when a later try
does; a try silent past the timeout is abandoned at the timeout (on a virtual clock) and
retried, since the partner keys on the order id; when every try fails the caller gets
`PartnerUnavailable`; a rejection is the partner's answer: never retried, and it keeps the
breaker closed; consecutive failures open the partner's breaker, which then refuses without
calling the partner and, after its cooldown, lets one probe through; a programmer error is
never retried."""

from __future__ import annotations

import asyncio
import datetime

import pytest

from ledger.invariants import InvariantViolation
from rails.adapter import CircuitBreaker, RetryPolicy
from rails.partners.partner import (
    PartnerAdapter,
    PartnerOrder,
    PartnerReceipt,
    PartnerRejected,
    PartnerUnavailable,
)
from rails.partners.resilient import ResilientPartner
from rails.resilience import Resilience
from tests import virtual_time

timeout_ms = 50
hang = "hang"


def order(number: int = 1) -> PartnerOrder:
    return PartnerOrder(
        order_id=number,
        tenant_id=7,
        partner_id=9,
        orchestration_id=1,
        bucket_id=2,
        customer_id=3,
        currency="EUR",
        amount_minor=100,
    )


class ScriptedPartner:
    """A partner whose sends follow a script: per send, an exception to raise, `hang`, or
    nothing (a receipt)."""

    def __init__(self, script: list[BaseException | str | None]) -> None:
        self.script = list(script)
        self.calls = 0

    @property
    def adapter(self) -> PartnerAdapter:
        return "http"

    async def send(self, order: PartnerOrder) -> PartnerReceipt:
        self.calls += 1
        action = self.script.pop(0) if self.script else None
        if action == hang:
            await asyncio.sleep(3_600)
        elif isinstance(action, BaseException):
            raise action
        return PartnerReceipt(
            order_id=order.order_id,
            partner_reference=f"P-{order.order_id}",
            accepted_at=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
        )


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def wrapped(
    inner: ScriptedPartner,
    *,
    attempts: int = 3,
    breaker: CircuitBreaker | None = None,
    sleep: RecordingSleep | None = None,
    jitter: float = 1.0,
) -> ResilientPartner:
    return ResilientPartner(
        inner,
        breaker=breaker or CircuitBreaker(failure_threshold=100),
        retry=RetryPolicy(attempts_max=attempts, base_delay_ms=100, delay_max_ms=1_000),
        timeout_ms=timeout_ms,
        sleep=sleep or RecordingSleep(),
        random=lambda: jitter,
    )


async def test_a_failed_send_is_retried_with_backoff_until_one_answers() -> None:
    inner = ScriptedPartner([PartnerUnavailable("503"), ConnectionError("reset"), None])
    sleep = RecordingSleep()
    receipt = await wrapped(inner, sleep=sleep).send(order())
    assert receipt.partner_reference == "P-1"
    assert inner.calls == 3
    assert sleep.delays == [0.1, 0.2]
    assert wrapped(inner).adapter == "http"


async def test_the_backoff_is_drawn_with_full_jitter() -> None:
    inner = ScriptedPartner([PartnerUnavailable("a"), PartnerUnavailable("b"), None])
    sleep = RecordingSleep()
    await wrapped(inner, sleep=sleep, jitter=0.5).send(order())
    assert sleep.delays == [0.05, 0.1]


async def test_every_try_failing_is_unavailable() -> None:
    inner = ScriptedPartner([PartnerUnavailable("503")] * 3)
    with pytest.raises(PartnerUnavailable, match="3 tries failed") as raised:
        await wrapped(inner).send(order())
    assert inner.calls == 3
    assert isinstance(raised.value.__cause__, PartnerUnavailable)


def test_a_silent_try_is_abandoned_at_the_timeout_and_retried() -> None:
    async def scenario() -> tuple[PartnerReceipt, float]:
        inner = ScriptedPartner([hang, None])
        started = virtual_time.now()
        receipt = await wrapped(inner).send(order())
        return receipt, virtual_time.now() - started

    receipt, waited = virtual_time.run(scenario())
    assert receipt.partner_reference == "P-1"
    assert waited == pytest.approx(timeout_ms / 1_000)


async def test_a_rejection_is_an_answer_never_retried_and_keeps_the_breaker_closed() -> None:
    breaker = CircuitBreaker(failure_threshold=1)
    inner = ScriptedPartner([PartnerRejected("account_closed", "closed")])
    with pytest.raises(PartnerRejected) as raised:
        await wrapped(inner, breaker=breaker).send(order())
    assert raised.value.code == "account_closed"
    assert inner.calls == 1
    assert breaker.state() == "closed"


async def test_consecutive_failures_open_the_breaker_which_refuses_without_sending() -> None:
    clock_now = [0.0]
    breaker = CircuitBreaker(
        failure_threshold=2, reset_timeout_ms=1_000, clock=lambda: clock_now[0]
    )
    inner = ScriptedPartner([PartnerUnavailable("a"), PartnerUnavailable("b"), ConnectionError()])
    partner = wrapped(inner, attempts=1, breaker=breaker)
    for _ in range(2):
        with pytest.raises(PartnerUnavailable):
            await partner.send(order())
    with pytest.raises(PartnerUnavailable, match="circuit open"):
        await partner.send(order())
    assert inner.calls == 2
    clock_now[0] = 1.0
    with pytest.raises(PartnerUnavailable):
        await partner.send(order())  # The probe fails: open again for another cooldown.
    assert breaker.state() == "open"
    clock_now[0] = 2.0
    assert (await partner.send(order())).partner_reference == "P-1"  # The probe answers.
    assert breaker.state() == "closed"
    assert inner.calls == 4


async def test_retries_stop_when_the_breaker_opens_meanwhile() -> None:
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout_ms=60_000)
    inner = ScriptedPartner([PartnerUnavailable("a")] * 5)
    with pytest.raises(PartnerUnavailable, match="circuit open"):
        await wrapped(inner, attempts=5, breaker=breaker).send(order())
    assert inner.calls == 2


async def test_a_programmer_error_is_never_retried() -> None:
    inner = ScriptedPartner([InvariantViolation("bug")])
    with pytest.raises(InvariantViolation):
        await wrapped(inner).send(order())
    assert inner.calls == 1


def test_resilience_settings_build_a_breaker_of_their_own() -> None:
    settings = Resilience(failure_threshold=3, reset_timeout_ms=5)
    assert settings.breaker() is not settings.breaker()
    with pytest.raises(InvariantViolation):
        Resilience(timeout_ms=0)
