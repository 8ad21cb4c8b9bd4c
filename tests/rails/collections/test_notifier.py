"""The sandbox notifier, against real Redis and a real local HTTP server, sends each due
notification to `/v1/providers/{provider}/webhooks`, signed so that Kovra's verification
(and the `standardwebhooks` library) accepts it, and only once it is due; a 2xx removes it; a
failing receiver gets it again after a backoff with the same `webhook-id`, until it answers
2xx or the notification has been tried `delivery_attempts_max` times, when it is dropped; and
two notifiers racing over the same notifications deliver each exactly once."""

from __future__ import annotations

import asyncio
import base64
import datetime
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from redis.asyncio import Redis
from standardwebhooks.webhooks import Webhook

from rails.collections.notifications import verify_notification
from rails.collections.notifier import NotifierLimits, SandboxNotifier
from rails.collections.provider import MandateRequest, ProviderName
from rails.collections.sandbox import SandboxProvider, notifications_key
from rails.collections.sepa_dd import SepaDirectDebit, sandbox_creditor
from tests import redis_server
from tests.gateway.webhooks.receiver import Receiver

start_ms = 1_790_000_000_000
delay_ms = 200
secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
receive_guard_seconds = 10.0


class Clock:
    def __init__(self) -> None:
        self.now_ms = start_ms

    def __call__(self) -> float:
        return self.now_ms / 1_000


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.redis_url(0))
    yield client
    await client.aclose()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def base_url(receiver: Receiver) -> str:
    return f"http://127.0.0.1:{receiver.server.server_address[1]}"


async def schedule_mandates(redis: Redis, namespace: str, clock: Clock, count: int) -> None:
    sandbox = SandboxProvider(
        SepaDirectDebit(sandbox_creditor),
        redis=redis,
        namespace=namespace,
        notification_delay_ms=delay_ms,
        clock=clock,
    )
    await sandbox.create_mandates(
        [
            MandateRequest(
                mandate_id=mandate_id,
                currency="EUR",
                reference="ordinary",
                bank_details={"iban": "NL91ABNA0417164300", "bic": "ABNANL2A"},
                account_holder_name="Ada",
                consent_accepted_at=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
            )
            for mandate_id in range(1, count + 1)
        ]
    )


def notifier(
    redis: Redis, namespace: str, receiver: Receiver, clock: Clock, limits: NotifierLimits
) -> SandboxNotifier:
    return SandboxNotifier(
        redis,
        base_url=base_url(receiver),
        secret=secret,
        client=httpx.AsyncClient,
        namespace=namespace,
        limits=limits,
        clock=clock,
        random=lambda: 1.0,
    )


async def test_a_due_notification_is_sent_signed_once_and_removed(
    redis: Redis, namespace: str, receiver: Receiver
) -> None:
    clock = Clock()
    await schedule_mandates(redis, namespace, clock, 1)
    sender = notifier(redis, namespace, receiver, clock, NotifierLimits())
    try:
        assert await sender.deliver_due(start_ms + delay_ms - 1) == 0
        assert receiver.snapshot() == []
        assert await sender.deliver_due(start_ms + delay_ms) == 1
        assert await sender.deliver_due(start_ms + 60_000) == 0
    finally:
        await sender.aclose()
    (request,) = receiver.snapshot()
    assert request.path == "/v1/providers/sepa_dd/webhooks"
    received = verify_notification(
        ProviderName.SEPA_DD,
        headers=request.headers,
        body=request.body,
        secrets=[secret],
        now_seconds=clock(),
    )
    assert received.type == "mandate.active"
    assert request.headers["webhook-timestamp"] == str(start_ms // 1_000)
    assert await redis.zcard(notifications_key(namespace)) == 0


async def test_the_standardwebhooks_library_verifies_what_the_notifier_sends(
    redis: Redis, namespace: str, receiver: Receiver
) -> None:
    clock = Clock()
    await schedule_mandates(redis, namespace, clock, 1)
    clock.now_ms = int(time.time() * 1_000)  # The library checks the timestamp against now.
    sender = notifier(redis, namespace, receiver, clock, NotifierLimits())
    try:
        assert await sender.deliver_due(clock.now_ms) == 1
    finally:
        await sender.aclose()
    (request,) = receiver.snapshot()
    assert Webhook(secret).verify(request.body, request.headers)["type"] == "mandate.active"


async def test_a_failing_receiver_gets_the_notification_again_after_a_backoff(
    redis: Redis, namespace: str
) -> None:
    clock = Clock()
    await schedule_mandates(redis, namespace, clock, 1)
    limits = NotifierLimits(retry_base_ms=1_000, retry_cap_ms=60_000)
    with Receiver(answers=[500, 503]) as receiver:
        sender = notifier(redis, namespace, receiver, clock, limits)
        try:
            due_ms = start_ms + delay_ms
            assert await sender.deliver_due(due_ms) == 0
            # Full jitter drawn at its ceiling: 1 s after the first failure, 2 s after the second.
            assert await sender.deliver_due(due_ms + 999) == 0
            assert await sender.deliver_due(due_ms + 1_000) == 0
            assert await sender.deliver_due(due_ms + 1_000 + 1_999) == 0
            assert await sender.deliver_due(due_ms + 1_000 + 2_000) == 1
        finally:
            await sender.aclose()
        requests = receiver.snapshot()
    assert len(requests) == 3
    assert len({request.headers["webhook-id"] for request in requests}) == 1
    assert await redis.zcard(notifications_key(namespace)) == 0


async def test_a_notification_is_dropped_after_its_last_attempt(
    redis: Redis, namespace: str
) -> None:
    clock = Clock()
    await schedule_mandates(redis, namespace, clock, 1)
    limits = NotifierLimits(delivery_attempts_max=2, retry_base_ms=0, retry_cap_ms=0)
    with Receiver(default_status=500) as receiver:
        sender = notifier(redis, namespace, receiver, clock, limits)
        try:
            for _ in range(4):
                assert await sender.deliver_due(start_ms + 60_000) == 0
        finally:
            await sender.aclose()
        assert len(receiver.snapshot()) == 2
    assert await redis.zcard(notifications_key(namespace)) == 0
    assert [
        key async for key in redis.scan_iter(match=f"{namespace}:collections:notification:*")
    ] == []


async def test_two_notifiers_racing_deliver_each_notification_exactly_once(
    redis: Redis, namespace: str, receiver: Receiver
) -> None:
    clock = Clock()
    count = 60
    await schedule_mandates(redis, namespace, clock, count)
    other = Redis.from_url(redis_server.redis_url(0))
    limits = NotifierLimits(batch_size_max=7)
    first = notifier(redis, namespace, receiver, clock, limits)
    second = notifier(other, namespace, receiver, clock, limits)
    try:
        delivered = 0
        for round_number in range(count):
            # Each round a minute later, so a send the loopback server dropped is due again.
            now_ms = start_ms + delay_ms + round_number * 60_000
            passes = await asyncio.gather(first.deliver_due(now_ms), second.deliver_due(now_ms))
            delivered += sum(passes)
            if delivered == count:
                break
    finally:
        await first.aclose()
        await second.aclose()
        await other.aclose()
    assert delivered == count
    ids = Counter(request.headers["webhook-id"] for request in receiver.snapshot())
    assert len(ids) == count
    assert set(ids.values()) == {1}


def test_a_malformed_secret_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="secret"):
        SandboxNotifier(
            Redis.from_url(redis_server.redis_url(0)),
            base_url="http://127.0.0.1:1",
            secret="not-a-secret",
            client=httpx.AsyncClient,
        )
