"""The delivery worker against a real local HTTP receiver and real Postgres. Deliveries are
signed so that `standardwebhooks` verifies them; a 500 is retried and then delivered with the
same webhook-id; a receiver that always fails ends dead-lettered and gets the event after a
redelivery; a slow receiver times out and is retried; an endpoint at its in-flight bound
gets its next attempts as soon as earlier ones end, not after the idle wait, and three
workers together keep to the endpoint's own bound, two sharing it evenly; a worker that
dies mid-delivery loses nothing (another delivers after the lease); two workers never make
the same attempt; in production a loopback destination is refused without being contacted;
a secret the worker's keys cannot open sends nothing, records why, and is delivered once
the sealing key is given to the worker; an endpoint is always sent through the same one of
the worker's HTTP clients, and stopping closes them all."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import asyncpg
import pytest
from standardwebhooks.webhooks import Webhook

from gateway.http.ids import encode_id
from gateway.infra.sealing import SecretBox
from gateway.webhooks import worker as worker_module
from gateway.webhooks.records import deliveries
from gateway.webhooks.records.endpoints import in_flight_max_default
from gateway.webhooks.worker import DeliveryWorker
from tests.gateway.webhooks.conftest import add_endpoint, add_events, box
from tests.gateway.webhooks.receiver import Receiver, hang

wait_seconds_max = 20.0


@asynccontextmanager
async def running(
    *workers: DeliveryWorker, idle_seconds: float = 0.02
) -> AsyncIterator[list[asyncio.Task[None]]]:
    tasks = [asyncio.create_task(w.run_forever(idle_seconds=idle_seconds)) for w in workers]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + wait_seconds_max
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the condition did not hold in time")


def statuses_are(pool: asyncpg.Pool, *wanted: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        rows = await pool.fetch("SELECT status FROM webhook_deliveries ORDER BY id")
        return sorted(row["status"] for row in rows) == sorted(wanted)

    return check


def worker(
    pool: asyncpg.Pool,
    *,
    keys: SecretBox = box,
    schedule: tuple[float, ...] = (0.05,),
    timeout_seconds: float = 5.0,
    sandbox: bool = True,
) -> DeliveryWorker:
    return DeliveryWorker(
        pool, keys, schedule=schedule, timeout_seconds=timeout_seconds, sandbox=sandbox
    )


async def attempt_outcomes(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch("SELECT outcome FROM webhook_attempts ORDER BY attempt")
    return [row["outcome"] for row in rows]


async def test_a_delivery_is_signed_and_verifies_with_standardwebhooks(
    pool: asyncpg.Pool, tenant_id: int
) -> None:
    with Receiver() as receiver:
        endpoint = await add_endpoint(pool, tenant_id, receiver.url)
        (event,) = await add_events(pool, tenant_id, ["transfer.completed"])
        async with running(worker(pool)):
            await eventually(statuses_are(pool, "delivered"))
        (request,) = receiver.snapshot()

    payload = Webhook(endpoint.secret).verify(request.body, request.headers)
    assert payload["id"] == encode_id("evt", event.int)
    assert payload["type"] == "transfer.completed"
    assert payload["data"] == {"amount": 1250, "currency": "EUR"}
    message = deliveries.delivery_id(event_id=event, endpoint_id=endpoint.id)
    assert request.headers["webhook-id"] == encode_id("msg", message.int)
    assert request.headers["content-type"] == "application/json"
    assert await attempt_outcomes(pool) == ["delivered"]


async def test_a_500_is_retried_and_then_delivered_with_the_same_id(
    pool: asyncpg.Pool, tenant_id: int
) -> None:
    with Receiver(answers=[500]) as receiver:
        endpoint = await add_endpoint(pool, tenant_id, receiver.url)
        await add_events(pool, tenant_id, ["deposit.posted"])
        async with running(worker(pool, schedule=(0.05, 60.0))):
            await eventually(statuses_are(pool, "delivered"))
        first, second = receiver.snapshot()

    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body
    Webhook(endpoint.secret).verify(second.body, second.headers)
    assert await attempt_outcomes(pool) == ["http_error", "delivered"]


async def test_an_always_failing_receiver_ends_dead_and_gets_it_after_redelivery(
    pool: asyncpg.Pool, tenant_id: int
) -> None:
    with Receiver(default_status=503) as receiver:
        endpoint = await add_endpoint(pool, tenant_id, receiver.url)
        (event,) = await add_events(pool, tenant_id, ["hold.created"])
        async with running(worker(pool, schedule=(0.01, 0.01))):
            await eventually(statuses_are(pool, "dead"))
            assert len(receiver.snapshot()) == 3
            assert await attempt_outcomes(pool) == ["http_error"] * 3

            receiver.default_status = 200
            await deliveries.redeliver(
                pool,
                tenant_id=tenant_id,
                event_id=event,
                event_type="hold.created",
                endpoint_id=endpoint.id,
            )
            await eventually(statuses_are(pool, "delivered"))
        received = receiver.snapshot()

    assert len(received) == 4
    assert len({r.headers["webhook-id"] for r in received}) == 1
    Webhook(endpoint.secret).verify(received[-1].body, received[-1].headers)


async def test_a_receiver_slower_than_the_timeout_is_retried(
    pool: asyncpg.Pool, tenant_id: int
) -> None:
    with Receiver(answers=[hang]) as receiver:
        await add_endpoint(pool, tenant_id, receiver.url)
        await add_events(pool, tenant_id, ["hold.voided"])
        # The hang times the first attempt out whatever the timeout. A whole second, and room
        # for more than one retry, keep a loaded machine (or a full collection in this
        # long-lived test process) from timing the retries out too.
        async with running(worker(pool, timeout_seconds=1.0, schedule=(0.05, 0.05, 0.05))):
            await eventually(statuses_are(pool, "delivered"))
            receiver.release()
    outcomes = await attempt_outcomes(pool)
    assert outcomes[0] == "timeout"
    assert outcomes[-1] == "delivered"
    assert set(outcomes[1:-1]) <= {"timeout"}


async def test_a_worker_dying_mid_delivery_loses_nothing(
    pool: asyncpg.Pool, tenant_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "lease_margin_seconds", 0.2)
    with Receiver(answers=[hang]) as receiver:
        await add_endpoint(pool, tenant_id, receiver.url)
        await add_events(pool, tenant_id, ["transfer.submitted"])
        async with running(worker(pool, timeout_seconds=1.0)):
            await asyncio.to_thread(receiver.hanging.wait, wait_seconds_max)
        # That worker is gone mid-request, with no outcome written; its lease runs out.
        assert await attempt_outcomes(pool) == []
        async with running(worker(pool, timeout_seconds=1.0)):
            await eventually(statuses_are(pool, "delivered"))
        received = receiver.snapshot()

    assert len(received) == 2
    assert received[0].headers["webhook-id"] == received[1].headers["webhook-id"]
    row = await pool.fetchrow("SELECT attempt FROM webhook_deliveries")
    assert row is not None
    assert row["attempt"] == 2


async def test_an_endpoint_at_its_bound_gets_more_as_soon_as_attempts_end(
    pool: asyncpg.Pool, tenant_id: int
) -> None:
    # Three times the per-endpoint bound, and an idle wait far longer than the test may run:
    # only claiming again when an attempt ends can deliver them all in time.
    count = 3 * in_flight_max_default
    with Receiver() as receiver:
        await add_endpoint(pool, tenant_id, receiver.url)
        await add_events(pool, tenant_id, ["deposit.posted"] * count)
        async with running(worker(pool), idle_seconds=3_600):
            await eventually(statuses_are(pool, *["delivered"] * count))
    assert len(receiver.snapshot()) == count


async def test_the_per_endpoint_bound_holds_across_workers(
    pool: asyncpg.Pool, tenant_id: int
) -> None:
    # Not the default bound: the endpoint's own, above it, holds across the workers.
    bound = in_flight_max_default + 3
    count = 4 * bound
    with Receiver(answers=[hang] * count) as receiver:
        await add_endpoint(pool, tenant_id, receiver.url, in_flight_max=bound)
        await add_events(pool, tenant_id, ["deposit.posted"] * count)
        async with running(worker(pool), worker(pool), worker(pool)):
            await asyncio.to_thread(receiver.wait_for, bound, timeout_seconds=wait_seconds_max)
            # Dozens of claim rounds of every worker: none may start another attempt while
            # the receiver holds `bound` of them.
            await asyncio.sleep(0.5)
            assert len(receiver.snapshot()) == bound
            receiver.release()
            await eventually(statuses_are(pool, *["delivered"] * count))
    assert len(receiver.snapshot()) == count


async def test_two_workers_share_an_endpoints_bound(pool: asyncpg.Pool, tenant_id: int) -> None:
    bound = in_flight_max_default
    with Receiver(delay_seconds=0.05) as receiver:
        endpoint = await add_endpoint(pool, tenant_id, receiver.url)
        await add_events(pool, tenant_id, ["deposit.posted"] * 400)
        workers = [worker(pool), worker(pool)]
        held: list[tuple[int, int]] = []
        async with running(*workers):
            # The first claims can come before the other worker is seen; once the first
            # attempts have ended, each worker keeps to half the bound.
            await asyncio.sleep(0.5)
            for _ in range(50):
                first, second = (w.per_endpoint[endpoint.id] for w in workers)
                held.append((first, second))
                await asyncio.sleep(0.01)
    assert all(first <= bound // 2 and second <= bound // 2 for first, second in held), held
    assert any(first and second for first, second in held), held


async def test_two_workers_never_make_the_same_attempt(pool: asyncpg.Pool, tenant_id: int) -> None:
    with Receiver() as first, Receiver() as second:
        await add_endpoint(pool, tenant_id, first.url)
        await add_endpoint(pool, tenant_id, second.url)
        await add_events(pool, tenant_id, ["deposit.posted"] * 150)
        async with running(worker(pool), worker(pool)):
            await eventually(statuses_are(pool, *["delivered"] * 300))
        received = first.snapshot() + second.snapshot()

    per_id = Counter(r.headers["webhook-id"] for r in received)
    assert len(per_id) == 300
    assert set(per_id.values()) == {1}
    assert {json.loads(r.body)["type"] for r in received} == {"deposit.posted"}


async def test_production_refuses_a_loopback_destination_without_calling_it(
    pool: asyncpg.Pool, tenant_id: int
) -> None:
    with Receiver() as receiver:
        await add_endpoint(pool, tenant_id, receiver.url.replace("http://", "https://"))
        await add_events(pool, tenant_id, ["deposit.posted"])
        async with running(worker(pool, sandbox=False, schedule=())):
            await eventually(statuses_are(pool, "dead"))
        assert receiver.snapshot() == []
    row = await pool.fetchrow("SELECT last_error FROM webhook_deliveries")
    assert row is not None
    assert "not a public address" in row["last_error"]
    assert await attempt_outcomes(pool) == ["refused"]


async def test_a_secret_the_keys_cannot_open_sends_nothing_until_they_can(
    pool: asyncpg.Pool, tenant_id: int
) -> None:
    """A worker whose keys do not open the endpoint's secret (sealed under a key it was not
    given) sends nothing and records why; given that key as a previous one, it delivers."""
    other = SecretBox("a-key-that-never-sealed-anything-" + "o" * 32)
    with Receiver() as receiver:
        endpoint = await add_endpoint(pool, tenant_id, receiver.url)
        await add_events(pool, tenant_id, ["transfer.completed"])
        async with running(worker(pool, keys=other, schedule=(0.01, 60.0))):
            await eventually(lambda: _attempted(pool))
        assert receiver.snapshot() == []
        error = await pool.fetchval("SELECT error FROM webhook_attempts")
        assert box.current_key_id in error
        rotated = SecretBox(
            "a-key-that-never-sealed-anything-" + "o" * 32,
            previous=["webhook-tests-sealing-key-" + "k" * 32],
        )
        await pool.execute("UPDATE webhook_deliveries SET next_attempt_at = now()")
        async with running(worker(pool, keys=rotated)):
            await eventually(statuses_are(pool, "delivered"))
        (request,) = receiver.snapshot()
    Webhook(endpoint.secret).verify(request.body, request.headers)
    *unreadable, delivered = await attempt_outcomes(pool)
    assert unreadable
    assert set(unreadable) == {"secret_unreadable"}
    assert delivered == "delivered"


async def _attempted(pool: asyncpg.Pool) -> bool:
    return bool(await pool.fetchval("SELECT count(*) FROM webhook_attempts"))


class _ClaimWatcher(DeliveryWorker):
    """A worker that says when its first claim has returned, so a test knows it is idle."""

    claimed_once: asyncio.Event

    async def _claim(self, wanted: int) -> list[deliveries.Claimed]:
        claimed = await super()._claim(wanted)
        self.claimed_once.set()
        return claimed


async def test_a_stop_that_arrives_as_an_attempt_ends_still_stops_the_worker(
    pool: asyncpg.Pool,
) -> None:
    """The idle wait ends when an attempt ends; a cancellation landing in that same turn of
    the loop must stop the worker, not be swallowed (as `asyncio.wait_for` does on 3.11)."""
    idle = _ClaimWatcher(pool, box, schedule=(0.05,), timeout_seconds=5.0, sandbox=True)
    idle.claimed_once = asyncio.Event()
    task = asyncio.create_task(idle.run_forever(idle_seconds=30.0))
    async with asyncio.timeout(wait_seconds_max):
        await idle.claimed_once.wait()
    await asyncio.sleep(0.05)  # Nothing is due: the worker is now in its idle wait.
    idle.slot_freed.set()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=2.0)
    if not done:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert done == {task}, "the worker went on after it was told to stop"
    assert task.cancelled()


async def test_an_endpoint_keeps_one_client_and_every_client_closes_on_stop(
    pool: asyncpg.Pool, tenant_id: int
) -> None:
    with Receiver() as receiver:
        endpoint = await add_endpoint(pool, tenant_id, receiver.url)
        await add_events(pool, tenant_id, ["deposit.posted", "deposit.posted"])
        delivery_worker = worker(pool)
        chosen = {delivery_worker._client_for(endpoint.id) for _ in range(3)}
        async with running(delivery_worker):
            await eventually(statuses_are(pool, "delivered", "delivered"))

    assert len(chosen) == 1
    assert len(delivery_worker.clients) == worker_module.client_shards
    assert all(client.is_closed for client in delivery_worker.clients)
