"""The resilient wrapper around a mandate provider: a try that raises is retried with
backoff and answers when a later try does; a try silent past the timeout is abandoned at the
timeout (on a virtual clock) and retried, since the provider is idempotent on Kovra's ids;
when every try fails the caller gets `ProviderUnavailable`; consecutive failures open the
breaker, which then refuses without calling the provider, and after the cooldown lets one
probe through; an answer that is not a failure (an unknown reference) passes through at once
and a programmer error is never retried; and the scheme's local rules pass straight through.
A balance is asked through the same guard."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Mapping, Sequence

import pytest

from ledger.invariants import InvariantViolation
from rails.adapter import CircuitBreaker, RetryPolicy
from rails.collections.provider import (
    CollectionAnswer,
    CollectionLookup,
    CollectionRequest,
    CollectionRun,
    MandateAnswer,
    MandateRequest,
    ProviderName,
    ProviderUnavailable,
)
from rails.collections.resilient import ResilientProvider
from rails.collections.sandbox import ProviderReferenceUnknown
from rails.resilience import Resilience
from tests import virtual_time

timeout_ms = 50


class ScriptedProvider:
    """A provider whose calls follow a script: per call, an exception to raise, `hang`, or
    nothing (answer)."""

    name = ProviderName.BACS_DD
    currency = "GBP"

    def __init__(self, script: list[BaseException | str | None]) -> None:
        self.script = list(script)
        self.calls = 0

    def validate_bank_details(self, bank_details: Mapping[str, str]) -> dict[str, str]:
        return dict(bank_details)

    def reason_description(self, reason_code: str) -> str:
        return f"described {reason_code}"

    def is_mandate_fatal(self, reason_code: str) -> bool:
        return reason_code == "B"

    async def _step(self) -> None:
        self.calls += 1
        action = self.script.pop(0) if self.script else None
        if action == "hang":
            await asyncio.sleep(3_600)
        elif isinstance(action, BaseException):
            raise action

    async def create_mandates(self, requests: Sequence[MandateRequest]) -> list[MandateAnswer]:
        await self._step()
        return [MandateAnswer(outcome="pending", provider_reference="M")] * len(requests)

    async def collect(self, requests: Sequence[CollectionRequest]) -> CollectionRun:
        await self._step()
        answers = [CollectionAnswer(outcome="pending", provider_reference="C")] * len(requests)
        return CollectionRun(answers=answers, message=None)

    async def lookup_collection(self, provider_reference: str) -> CollectionLookup:
        await self._step()
        return CollectionLookup(status="succeeded")

    async def deactivate_mandate(self, provider_reference: str) -> None:
        await self._step()

    async def balance(self, provider_reference: str) -> int | None:
        await self._step()
        return 4_200


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def wrapped(
    inner: ScriptedProvider,
    *,
    attempts: int = 3,
    breaker: CircuitBreaker | None = None,
    sleep: RecordingSleep | None = None,
) -> ResilientProvider:
    return ResilientProvider(
        inner,
        breaker=breaker or CircuitBreaker(failure_threshold=100),
        retry=RetryPolicy(attempts_max=attempts, base_delay_ms=100, delay_max_ms=1_000),
        timeout_ms=timeout_ms,
        sleep=sleep or RecordingSleep(),
        random=lambda: 1.0,
        passthrough=(ProviderReferenceUnknown,),
    )


mandate = MandateRequest(
    mandate_id=1,
    currency="GBP",
    reference="r",
    bank_details={"sort_code": "089999", "account_number": "66374958"},
    account_holder_name="Ada",
    consent_accepted_at=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
)


async def test_a_try_that_raises_is_retried_with_backoff_until_one_answers() -> None:
    inner = ScriptedProvider([ConnectionError("refused"), ConnectionError("reset"), None])
    sleep = RecordingSleep()
    answers = await wrapped(inner, sleep=sleep).create_mandates([mandate, mandate])
    assert [a.provider_reference for a in answers] == ["M", "M"]
    assert inner.calls == 3
    assert sleep.delays == [0.1, 0.2]


async def test_every_try_failing_is_provider_unavailable() -> None:
    inner = ScriptedProvider([ConnectionError("refused")] * 3)
    with pytest.raises(ProviderUnavailable) as raised:
        await wrapped(inner).lookup_collection("C")
    assert inner.calls == 3
    assert isinstance(raised.value.__cause__, ConnectionError)


def test_a_silent_try_is_abandoned_at_the_timeout_and_retried() -> None:
    async def scenario() -> tuple[list[CollectionLookup], float]:
        inner = ScriptedProvider(["hang", None])
        started = virtual_time.now()
        lookup = await wrapped(inner, sleep=RecordingSleep()).lookup_collection("C")
        return [lookup], virtual_time.now() - started

    lookups, waited = virtual_time.run(scenario())
    assert lookups == [CollectionLookup(status="succeeded")]
    assert waited == pytest.approx(timeout_ms / 1_000)


async def test_consecutive_failures_open_the_breaker_which_refuses_without_calling() -> None:
    clock_now = [0.0]
    breaker = CircuitBreaker(
        failure_threshold=2, reset_timeout_ms=1_000, clock=lambda: clock_now[0]
    )
    inner = ScriptedProvider([ConnectionError("a"), ConnectionError("b")])
    provider = wrapped(inner, attempts=1, breaker=breaker)
    for _ in range(2):
        with pytest.raises(ProviderUnavailable):
            await provider.deactivate_mandate("M")
    with pytest.raises(ProviderUnavailable, match="circuit open"):
        await provider.deactivate_mandate("M")
    assert inner.calls == 2
    clock_now[0] = 1.0
    await provider.deactivate_mandate("M")  # The probe, answered: the breaker closes.
    assert breaker.state() == "closed"
    assert inner.calls == 3


async def test_an_unknown_reference_passes_through_at_once_and_counts_as_an_answer() -> None:
    breaker = CircuitBreaker(failure_threshold=1)
    inner = ScriptedProvider([ProviderReferenceUnknown("C")])
    with pytest.raises(ProviderReferenceUnknown):
        await wrapped(inner, breaker=breaker).lookup_collection("C")
    assert inner.calls == 1
    assert breaker.state() == "closed"


async def test_a_programmer_error_is_never_retried() -> None:
    inner = ScriptedProvider([InvariantViolation("bug")])
    assert (await wrapped(inner).collect([])).answers == []  # Answered without a call.
    assert inner.calls == 0
    with pytest.raises(InvariantViolation):
        await wrapped(inner).deactivate_mandate("M")
    assert inner.calls == 1


def test_the_schemes_rules_pass_straight_through() -> None:
    provider = wrapped(ScriptedProvider([]))
    assert provider.name is ProviderName.BACS_DD
    assert provider.currency == "GBP"
    assert provider.reason_description("B") == "described B"
    assert provider.is_mandate_fatal("B")
    assert not provider.is_mandate_fatal("0")
    assert provider.validate_bank_details({"a": "b"}) == {"a": "b"}


def test_resilience_settings_build_a_breaker_of_their_own() -> None:
    settings = Resilience(failure_threshold=3, reset_timeout_ms=5)
    assert settings.breaker() is not settings.breaker()
    with pytest.raises(InvariantViolation):
        Resilience(timeout_ms=0)


async def test_a_balance_is_asked_through_the_same_retries_and_breaker() -> None:
    inner = ScriptedProvider([ConnectionError("reset")])
    sleep = RecordingSleep()
    assert await wrapped(inner, sleep=sleep).balance("M") == 4_200
    assert (inner.calls, len(sleep.delays)) == (2, 1)
    failing = ScriptedProvider([ConnectionError("down")] * 3)
    with pytest.raises(ProviderUnavailable):
        await wrapped(failing).balance("M")
