"""Each corridor has its own rail adapter and breaker: a UK rail that keeps failing opens
only the UK breaker, while EU and ID submissions go on; production refuses to start
without real rails; and the sandbox rails built for a worker remember what they received in
the Redis they are given, so a payment sent again through another worker's rails is answered
as the first time and paid once."""

from __future__ import annotations

import datetime
import uuid

import pytest
from redis.asyncio import Redis

from gateway.settings import load_settings
from gateway.transfers.rails_setup import CorridorRouter, NoRailConfigured, build_rail
from rails.adapter import (
    CircuitBreaker,
    RailAdapter,
    RailResponse,
    RailSubmission,
    RailUnavailable,
    ResilientRail,
    RetryPolicy,
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
