"""The webhook delivery worker (part of `kovra worker`): claims due attempts, sends them
signed, and writes their outcomes in batches.

Attempts run concurrently across endpoints, at most the endpoint's own `in_flight_max` at
a time for one endpoint across every worker (8 unless its tenant set another, at most 64: so
one slow receiver cannot take every slot, and a receiver is not sent more at once because
more workers run), each worker taking at most an even share of it, and `in_flight_max` in
all per worker.
Each attempt has a total timeout; a 2xx answer delivers, anything else is retried on the
schedule and dead-lettered after the last retry. Outcomes go to Postgres in batches; if
the worker dies first, the claim's lease runs out and another worker (or this one,
restarted) makes the next attempt with the same `webhook-id`: at least once, never lost.
"""

from __future__ import annotations

import asyncio
import datetime
import random as _random
import time
import uuid
from collections import Counter
from collections.abc import Callable

import asyncpg
import httpx
import msgspec
import structlog

from gateway.http.ids import encode_id
from gateway.infra.observability import (
    webhook_attempt_seconds,
    webhook_attempts_total,
    webhook_dead_letters_total,
    webhook_in_flight,
    webhook_queue_depth,
)
from gateway.infra.sealing import SecretBox, SecretUnreadable
from gateway.webhooks.destinations import (
    Destination,
    DestinationRefused,
    connect_url,
    host_header,
    resolve,
)
from gateway.webhooks.records import deliveries
from gateway.webhooks.records.deliveries import Claimed, Outcome
from gateway.webhooks.schedule import retry_delay_seconds
from gateway.webhooks.signing import signature_header
from gateway.webhooks.wire import WebhookBody

in_flight_max = 128
claim_batch_max = 100
flush_batch_max = 500
flush_interval_seconds = 0.05
idle_seconds_default = 0.25
claim_coalesce_seconds = 0.005
queue_depth_interval_seconds = 5.0
response_bytes_max = 4_096
# HTTP clients per worker, each endpoint always sent through the same one. httpx's pool
# looks at every one of its connections (polling each idle socket) for every request it
# sends, so one pool of up to `in_flight_max` connections made that scan the largest cost
# of an attempt; split, a request looks at about the connections of its own endpoint.
client_shards = 16
# A claim's lease outlives the attempt's timeout by this much, for writing the outcome.
lease_margin_seconds = 5.0
user_agent = "Kovra-Webhooks/1"

# What Postgres raises while it is down or restarting (a refused or lost connection, a
# server still recovering, a bounded wait that ran out): the step is retried, never fatal.
database_errors = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
log = structlog.get_logger("kovra.webhooks")
_body_encoder = msgspec.json.Encoder()


def body_of(claimed: Claimed) -> bytes:
    return _body_encoder.encode(
        WebhookBody(
            id=encode_id("evt", claimed.event_id.int),
            type=claimed.event_type,
            timestamp=claimed.event_created_at,
            data=claimed.payload,
        )
    )


class DeliveryWorker:
    def __init__(
        self,
        pool: asyncpg.Pool,
        box: SecretBox,
        *,
        schedule: tuple[float, ...],
        timeout_seconds: float,
        sandbox: bool,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.pool = pool
        self.box = box
        self.schedule = schedule
        self.timeout_seconds = timeout_seconds
        self.sandbox = sandbox
        self.random = random
        # Names this worker's leases, so its claims count other workers' attempts in flight.
        self.worker_id = uuid.uuid4()
        self.in_flight: dict[uuid.UUID, asyncio.Task[None]] = {}
        self.per_endpoint: Counter[uuid.UUID] = Counter()
        self.outcomes: list[Outcome] = []
        self.slot_freed = asyncio.Event()
        self.clients = [
            httpx.AsyncClient(
                follow_redirects=False,
                trust_env=False,
                limits=httpx.Limits(max_connections=in_flight_max),
                headers={"user-agent": user_agent},
            )
            for _ in range(client_shards)
        ]

    async def run_forever(self, *, idle_seconds: float = idle_seconds_default) -> None:
        loop = asyncio.get_running_loop()
        helpers = [
            loop.create_task(self._flush_forever()),
            loop.create_task(self._measure_queue_forever()),
        ]
        try:
            while True:
                if len(self.in_flight) >= in_flight_max:
                    await self._next_slot(timeout_seconds=None)
                    continue
                wanted = min(claim_batch_max, in_flight_max - len(self.in_flight))
                try:
                    claimed = await self._claim(wanted)
                except database_errors:
                    # Postgres is down or restarting: the attempts in flight go on, and
                    # claiming resumes once it answers again; the process stays up.
                    log.exception("webhook_claim_failed")
                    await self._next_slot(timeout_seconds=idle_seconds)
                    continue
                for attempt in claimed:
                    self._start(attempt)
                if len(claimed) < wanted:
                    # Nothing more is due, or the due work belongs to endpoints at their
                    # bound: claim again when an attempt ends (its endpoint has room again)
                    # or after the idle wait, whichever comes first.
                    await self._next_slot(timeout_seconds=idle_seconds)
        finally:
            await self._shut_down(helpers)

    async def _next_slot(self, *, timeout_seconds: float | None) -> None:
        self.slot_freed.clear()
        # `asyncio.timeout`, not `asyncio.wait_for`: on Python 3.11 `wait_for` swallows a
        # cancellation that lands in the turn the event is set, and the worker would not stop.
        try:
            async with asyncio.timeout(timeout_seconds):
                await self.slot_freed.wait()
        except TimeoutError:
            return
        # Let a few more attempts end, so one claim serves them all.
        await asyncio.sleep(claim_coalesce_seconds)

    async def _claim(self, wanted: int) -> list[Claimed]:
        in_flight = {endpoint: count for endpoint, count in self.per_endpoint.items() if count > 0}
        return await deliveries.claim(
            self.pool,
            worker_id=self.worker_id,
            limit=wanted,
            in_flight_by_endpoint=in_flight,
            lease_seconds=self.timeout_seconds + lease_margin_seconds,
        )

    def _start(self, claimed: Claimed) -> None:
        task = asyncio.get_running_loop().create_task(self._attempt(claimed))
        self.in_flight[claimed.id] = task
        self.per_endpoint[claimed.endpoint_id] += 1
        webhook_in_flight.inc()

        def done(_: asyncio.Task[None]) -> None:
            self.in_flight.pop(claimed.id, None)
            self.per_endpoint[claimed.endpoint_id] -= 1
            if self.per_endpoint[claimed.endpoint_id] <= 0:
                del self.per_endpoint[claimed.endpoint_id]
            webhook_in_flight.dec()
            self.slot_freed.set()

        task.add_done_callback(done)

    async def _attempt(self, claimed: Claimed) -> None:
        started = time.perf_counter()
        outcome, status_code, error = await self._send(claimed)
        elapsed = time.perf_counter() - started
        webhook_attempts_total.labels(outcome=outcome).inc()
        webhook_attempt_seconds.labels(outcome=outcome).observe(elapsed)
        self.outcomes.append(
            self._decide(claimed, outcome, status_code, error, int(elapsed * 1000))
        )
        if len(self.outcomes) >= flush_batch_max:
            await self._flush()

    def _decide(
        self,
        claimed: Claimed,
        outcome: str,
        status_code: int | None,
        error: str | None,
        duration_ms: int,
    ) -> Outcome:
        next_attempt_at = None
        if outcome == "delivered":
            status = "delivered"
        else:
            delay = retry_delay_seconds(
                self.schedule, failed_attempt=claimed.round_attempt, random=self.random
            )
            if delay is None:
                status = "dead"
                webhook_dead_letters_total.inc()
                log.warning("webhook_dead_lettered", delivery_id=str(claimed.id), error=error)
            else:
                status = "pending"
                next_attempt_at = datetime.datetime.now(tz=datetime.UTC) + datetime.timedelta(
                    seconds=delay
                )
        return Outcome(
            id=claimed.id,
            attempt=claimed.attempt,
            status=status,
            next_attempt_at=next_attempt_at,
            outcome=outcome,
            status_code=status_code,
            error=error,
            duration_ms=duration_ms,
        )

    async def _send(self, claimed: Claimed) -> tuple[str, int | None, str | None]:
        """One signed POST: (outcome, HTTP status, error), never an exception."""
        try:
            async with asyncio.timeout(self.timeout_seconds):
                destination = await resolve(claimed.url, sandbox=self.sandbox)
                client = self._client_for(claimed.endpoint_id)
                request = self._request(claimed, destination, client=client)
                response = await client.send(request, stream=True)
                try:
                    await _read_some(response)
                finally:
                    await response.aclose()
        except DestinationRefused as refusal:
            return "refused", None, str(refusal)
        except SecretUnreadable as unreadable:
            # The operator's keys do not open this endpoint's secret: nothing is sent, and
            # the attempt is retried (or redelivered) once the keys are set right.
            log.error("webhook_secret_unreadable", endpoint_id=str(claimed.endpoint_id))
            return "secret_unreadable", None, str(unreadable)[:500]
        except TimeoutError:
            return "timeout", None, f"no answer within {self.timeout_seconds:g} s"
        except (httpx.HTTPError, OSError) as failure:
            return "connection_error", None, f"{type(failure).__name__}: {failure}"[:500]
        if 200 <= response.status_code < 300:
            return "delivered", response.status_code, None
        return "http_error", response.status_code, f"answered {response.status_code}"

    def _client_for(self, endpoint_id: uuid.UUID) -> httpx.AsyncClient:
        return self.clients[endpoint_id.int % client_shards]

    def _request(
        self, claimed: Claimed, destination: Destination, *, client: httpx.AsyncClient
    ) -> httpx.Request:
        body = body_of(claimed)
        message_id = encode_id("msg", claimed.id.int)
        timestamp_seconds = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp_seconds),
            "webhook-signature": signature_header(
                secrets_active=[
                    self.box.open(sealed, bound_to=claimed.endpoint_id.bytes)
                    for sealed in claimed.sealed_secrets
                ],
                message_id=message_id,
                timestamp_seconds=timestamp_seconds,
                body=body,
            ),
        }
        extensions: dict[str, str] = {}
        if destination.address is not None:
            # Connect to the address that was checked; the name stays for Host and TLS.
            headers["host"] = host_header(destination)
            extensions["sni_hostname"] = destination.host
        return client.build_request(
            "POST",
            connect_url(destination),
            content=body,
            headers=headers,
            extensions=extensions,
        )

    async def _flush(self) -> None:
        batch, self.outcomes = self.outcomes, []
        if not batch:
            return
        try:
            await deliveries.record_outcomes(self.pool, batch)
        except database_errors:
            # The leases of these attempts run out and they are tried again: at least once.
            log.exception("webhook_outcomes_not_recorded", count=len(batch))

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(flush_interval_seconds)
            await self._flush()

    async def _measure_queue_forever(self) -> None:
        while True:
            try:
                webhook_queue_depth.set(await deliveries.queue_depth(self.pool))
            except database_errors:
                log.exception("webhook_queue_depth_unavailable")
            await asyncio.sleep(queue_depth_interval_seconds)

    async def _shut_down(self, helpers: list[asyncio.Task[None]]) -> None:
        """Stop sending; record what finished. Unfinished attempts are retried after their
        lease, by whichever worker claims them."""
        for task in [*self.in_flight.values(), *helpers]:
            task.cancel()
        await asyncio.gather(*self.in_flight.values(), *helpers, return_exceptions=True)
        await asyncio.shield(self._flush())
        try:
            await asyncio.shield(deliveries.forget_worker(self.pool, worker_id=self.worker_id))
        except database_errors:
            # Forgotten anyway once unseen for two leases; nothing is lost meanwhile.
            log.warning("webhook_worker_not_forgotten", worker_id=str(self.worker_id))
        for client in self.clients:
            await client.aclose()


async def _read_some(response: httpx.Response) -> None:
    """Read (and drop) at most `response_bytes_max` of the answer: a receiver's body is not
    ours to keep, and an endless one must not hold the attempt."""
    read = 0
    async for chunk in response.aiter_raw():
        read += len(chunk)
        if read >= response_bytes_max:
            break


async def run_forever(
    pool: asyncpg.Pool,
    box: SecretBox,
    *,
    schedule: tuple[float, ...],
    timeout_seconds: float,
    sandbox: bool,
) -> None:
    worker = DeliveryWorker(
        pool, box, schedule=schedule, timeout_seconds=timeout_seconds, sandbox=sandbox
    )
    await worker.run_forever()
