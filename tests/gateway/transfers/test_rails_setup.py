"""Each corridor has its own rail adapter and breaker: a UK rail that keeps failing opens
only the UK breaker, while EU and ID submissions go on; production refuses to start
without real rails; and the sandbox rails built for a worker remember what they received in
the Redis they are given, so a payment sent again through another worker's rails is answered
as the first time and paid once.

A batch through the router is split by corridor, in chunks of at most
`rail_batch_size_max`, sent to every corridor at once, and answered in its own order, with
None for every submission of a chunk whose rail is unavailable; any other error of an
adapter is raised; the router's own batch is bounded."""

from __future__ import annotations

import asyncio
import datetime
import uuid
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis

from gateway.settings import load_settings
from gateway.transfers.rails_setup import (
    CorridorRouter,
    NoRailConfigured,
    build_rail,
    corridor_of_rail,
    router_batch_size_max,
)
from ledger.invariants import InvariantViolation
from rails.adapter import (
    CircuitBreaker,
    RailAdapter,
    RailResponse,
    RailSubmission,
    RailUnavailable,
    ResilientRail,
    RetryPolicy,
    rail_batch_size_max,
)
from rails.bank_details import validate_bank_details
from rails.corridors import Corridor, Rail
from rails.iso20022 import PayoutInstruction, build_pacs008
from rails.redis_memory import RedisRailMemory
from rails.sandbox import SandboxRail
from tests import redis_server

sepa = {"iban": "DE89370400440532013000", "bic": "COBADEFFXXX"}


class Broken:
    async def submit(self, submission: RailSubmission) -> RailResponse:
        raise ConnectionError("the UK bank is down")

    async def submit_batch(self, submissions: Sequence[RailSubmission]) -> list[RailResponse]:
        raise ConnectionError("the UK bank is down")


def _named(submission: RailSubmission) -> RailResponse:
    """An answer that names the submission it answers."""
    report = f"{submission.rail.value}:{submission.transfer_id}".encode()
    return RailResponse(outcome="accepted", reason_code=None, pacs002=report)


class Echo:
    """A corridor's adapter answering each submission by name, keeping each batch's size and
    how many of its batches were in flight at most."""

    def __init__(self, *, unavailable: bool = False, failing: Exception | None = None) -> None:
        self.unavailable = unavailable
        self.failing = failing
        self.batch_sizes: list[int] = []
        self.in_flight = 0
        self.in_flight_max = 0

    async def submit(self, submission: RailSubmission) -> RailResponse:
        (response,) = await self.submit_batch([submission])
        return response

    async def submit_batch(self, submissions: Sequence[RailSubmission]) -> list[RailResponse]:
        self.batch_sizes.append(len(submissions))
        self.in_flight += 1
        self.in_flight_max = max(self.in_flight_max, self.in_flight)
        try:
            await asyncio.sleep(0)  # Let the other batches start.
            if self.failing is not None:
                raise self.failing
            if self.unavailable:
                raise RailUnavailable("circuit open")
            return [_named(submission) for submission in submissions]
        finally:
            self.in_flight -= 1


def _bare(rail: Rail, transfer_id: int) -> RailSubmission:
    """A submission the fakes never read the message of."""
    return RailSubmission(
        transfer_id=transfer_id,
        attempt=1,
        rail=rail,
        end_to_end_id=f"E{transfer_id}",
        reference="INV",
        pacs008=b"<Document/>",
    )


def _submission(
    rail: Rail,
    currency: str,
    details: dict[str, str],
    country: str,
    *,
    end_to_end_id: str = "E1",
    uetr: uuid.UUID | None = None,
    attempt: int = 1,
) -> RailSubmission:
    message = build_pacs008(
        PayoutInstruction(
            message_id=f"M{attempt}",
            end_to_end_id=end_to_end_id,
            uetr=uetr or uuid.uuid4(),
            rail=rail,
            currency=currency,
            amount_minor=100,
            minor_units=2,
            debtor_name="Kovra",
            debtor_agent_bic="KOVRGB2L",
            creditor_name="C",
            creditor_details=validate_bank_details(country=country, details=details),
            reference="INV",
            created_at=datetime.datetime.now(tz=datetime.UTC),
        )
    )
    return RailSubmission(
        transfer_id=1,
        attempt=attempt,
        rail=rail,
        end_to_end_id=end_to_end_id,
        reference="INV",
        pacs008=message,
    )


async def test_a_failing_corridor_does_not_stop_the_others(
    redis_client: Redis, namespace: str
) -> None:
    async def no_sleep(_: float) -> None:
        return

    def resilient(inner: RailAdapter) -> ResilientRail:
        return ResilientRail(
            inner,
            breaker=CircuitBreaker(failure_threshold=2),
            retry=RetryPolicy(attempts_max=1),
            timeout_ms=1_000,
            sleep=no_sleep,
        )

    memory = RedisRailMemory(redis_client, namespace=namespace)
    router = CorridorRouter(
        {
            Corridor.EU: resilient(SandboxRail(memory=memory, latency_ms_min=0, latency_ms_max=0)),
            Corridor.UK: resilient(Broken()),
            Corridor.ID: resilient(SandboxRail(memory=memory, latency_ms_min=0, latency_ms_max=0)),
        }
    )
    uk = _submission(
        Rail.FASTER_PAYMENTS, "GBP", {"sort_code": "089999", "account_number": "66374958"}, "GB"
    )
    for _ in range(3):
        with pytest.raises(RailUnavailable):
            await router.submit(uk)
    eu = _submission(Rail.SEPA_INSTANT, "EUR", sepa, "DE")
    idr = _submission(Rail.BI_FAST, "IDR", {"bank_code": "014", "account_number": "123456"}, "ID")
    assert (await router.submit(eu)).outcome == "accepted"
    assert (await router.submit(idr)).outcome == "accepted"


def test_production_has_no_rails_yet(redis_client: Redis) -> None:
    with pytest.raises(NoRailConfigured):
        build_rail(
            load_settings(
                {"KOVRA_ENV": "production", "TB_ADDRESSES": "3000", "KOVRA_SECRETS_KEY": "k" * 32}
            ),
            redis=redis_client,
        )
    router = build_rail(load_settings({}), redis=redis_client)
    # Three corridors, three adapters, hence three breakers.
    assert len({id(router.adapter(corridor)) for corridor in Corridor}) == len(Corridor)


async def test_two_workers_rails_share_their_memory_of_payments(redis_client: Redis) -> None:
    """Built on their own connections, as in two worker processes: what one worker's rail
    received, the other's knows. The rails use the deployment's namespace, so the test
    removes exactly what its one payment left there."""
    settings = load_settings({"KOVRA_SANDBOX_LATENCY_MS_MAX": "0"})
    other_connection = Redis.from_url(redis_server.redis_url(0))
    end_to_end_id, uetr = f"E{uuid.uuid4().hex[:20]}", uuid.uuid4()
    first, again = (
        _submission(
            Rail.SEPA_INSTANT, "EUR", sepa, "DE", end_to_end_id=end_to_end_id, uetr=uetr, attempt=n
        )
        for n in (1, 2)
    )
    try:
        answer = await build_rail(settings, redis=redis_client).submit(first)
        replayed = await build_rail(settings, redis=other_connection).submit(again)
        assert answer.outcome == "accepted"
        assert replayed == answer  # The first pacs.002, not one for the second message.
        payment = await RedisRailMemory(redis_client).payment(rail=Rail.SEPA_INSTANT, uetr=uetr)
        assert payment is not None
        assert (payment.answer, payment.duplicates) == (answer, 1)
    finally:
        await other_connection.aclose()
        await _forget(redis_client, uetr=uetr, end_to_end_id=end_to_end_id)


async def _forget(redis: Redis, *, uetr: uuid.UUID, end_to_end_id: str) -> None:
    memory = RedisRailMemory(redis)
    for receipt in await memory.receipts():
        if receipt.uetr == uetr:
            await redis.xdel(memory.receipts_key, receipt.stream_id)
    if await redis.xlen(memory.receipts_key) == 0:
        await redis.delete(memory.receipts_key)
    await redis.delete(
        f"kovra:rail:sepa_instant:e2e:{end_to_end_id}", f"kovra:rail:sepa_instant:uetr:{uetr}"
    )


@given(
    rails=st.lists(st.sampled_from(Rail), max_size=40),
    unavailable=st.sets(st.sampled_from(Corridor)),
)
def test_a_batch_is_answered_in_its_order_with_none_where_the_rail_is_unavailable(
    rails: list[Rail], unavailable: set[Corridor]
) -> None:
    adapters = {corridor: Echo(unavailable=corridor in unavailable) for corridor in Corridor}
    batch = [_bare(rail, index) for index, rail in enumerate(rails)]
    answers = asyncio.run(CorridorRouter(adapters).submit_batch(batch))
    assert answers == [
        None if corridor_of_rail[submission.rail] in unavailable else _named(submission)
        for submission in batch
    ]
    for corridor, adapter in adapters.items():
        sent = sum(corridor_of_rail[rail] is corridor for rail in rails)
        assert adapter.batch_sizes == ([sent] if sent else [])  # One call per corridor.


async def test_a_corridors_share_is_sent_in_chunks_at_once_and_reassembled() -> None:
    eu, uk, id_ = Echo(), Echo(), Echo()
    router = CorridorRouter({Corridor.EU: eu, Corridor.UK: uk, Corridor.ID: id_})
    count = 2 * rail_batch_size_max + 500
    batch = [
        _bare(Rail.SEPA_INSTANT if index % 10 else Rail.CHAPS, index) for index in range(count)
    ]
    answers = await router.submit_batch(batch)
    assert answers == [_named(submission) for submission in batch]
    eu_count = count - count // 10
    assert eu.batch_sizes == [rail_batch_size_max, rail_batch_size_max, eu_count - 2_000]
    assert eu.in_flight_max == 3  # The chunks went at the same time.
    assert uk.batch_sizes == [count // 10]
    assert id_.batch_sizes == []


class HalfOpen(Echo):
    """A rail whose half-open breaker lets the first batch through and refuses the others."""

    async def submit_batch(self, submissions: Sequence[RailSubmission]) -> list[RailResponse]:
        probe = not self.batch_sizes
        self.batch_sizes.append(len(submissions))
        await asyncio.sleep(0)
        if not probe:
            raise RailUnavailable("circuit half-open: one probe at a time")
        return [_named(submission) for submission in submissions]


async def test_only_the_chunks_refused_are_none() -> None:
    eu = HalfOpen()
    router = CorridorRouter({Corridor.EU: eu, Corridor.UK: Echo(), Corridor.ID: Echo()})
    batch = [_bare(Rail.SEPA_INSTANT, index) for index in range(rail_batch_size_max + 1)]
    answers = await router.submit_batch(batch)
    assert answers[:rail_batch_size_max] == [_named(s) for s in batch[:rail_batch_size_max]]
    assert answers[rail_batch_size_max:] == [None]


async def test_an_adapters_bug_is_raised_once_every_corridor_has_answered() -> None:
    eu, id_ = Echo(), Echo()
    broken = Echo(failing=RuntimeError("the adapter has a bug"))
    router = CorridorRouter({Corridor.EU: eu, Corridor.UK: broken, Corridor.ID: id_})
    with pytest.raises(RuntimeError, match="bug"):
        await router.submit_batch(
            [_bare(Rail.SEPA_INSTANT, 1), _bare(Rail.CHAPS, 2), _bare(Rail.RTGS, 3)]
        )
    assert (eu.batch_sizes, id_.batch_sizes) == ([1], [1])


async def test_the_routers_batch_is_bounded() -> None:
    router = CorridorRouter({corridor: Echo() for corridor in Corridor})
    assert await router.submit_batch([]) == []
    with pytest.raises(InvariantViolation, match="at most"):
        await router.submit_batch([_bare(Rail.CHAPS, 1)] * (router_batch_size_max + 1))


async def test_a_failing_corridor_gets_none_in_a_batch_while_the_others_are_paid(
    redis_client: Redis, namespace: str
) -> None:
    """The sandbox rails behind their resilience, as built for the worker."""
    memory = RedisRailMemory(redis_client, namespace=namespace)

    def resilient(inner: RailAdapter) -> ResilientRail:
        return ResilientRail(
            inner, breaker=CircuitBreaker(), retry=RetryPolicy(attempts_max=1), timeout_ms=1_000
        )

    router = CorridorRouter(
        {
            Corridor.EU: resilient(SandboxRail(memory=memory, latency_ms_min=0, latency_ms_max=0)),
            Corridor.UK: resilient(Broken()),
            Corridor.ID: resilient(SandboxRail(memory=memory, latency_ms_min=0, latency_ms_max=0)),
        }
    )
    uk = {"sort_code": "089999", "account_number": "66374958"}
    idr = {"bank_code": "014", "account_number": "123456"}
    batch = [
        _submission(Rail.SEPA_INSTANT, "EUR", sepa, "DE", end_to_end_id="E1"),
        _submission(Rail.FASTER_PAYMENTS, "GBP", uk, "GB", end_to_end_id="E2"),
        _submission(Rail.BI_FAST, "IDR", idr, "ID", end_to_end_id="E3"),
        _submission(Rail.SEPA_CREDIT_TRANSFER, "EUR", sepa, "DE", end_to_end_id="E4"),
    ]
    answers = await router.submit_batch(batch)
    assert [None if answer is None else answer.outcome for answer in answers] == [
        "accepted",
        None,
        "accepted",
        "accepted",
    ]
