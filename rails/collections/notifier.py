"""The sandbox providers' notifications, sent to Kovra as a real provider sends them: signed
HTTP requests to `{base_url}/v1/providers/{provider}/webhooks` (SPEC §10).

The sandbox providers schedule each notification in Redis (`rails.collections.sandbox`): a
sorted set of notification ids by due time, and each notification's provider and body. Any
number of notifiers (one per worker process) share them:

- a pass claims at most `batch_size_max` due notifications in one script, moving each one's
  due time `lease_ms` ahead: the lease. Another notifier sees it as not yet due, so two
  notifiers never send one notification at once; a notifier that dies holding a lease loses
  it when the lease runs out, and another sends the notification then;
- each claimed notification is signed with the configured `whsec_` secret at the moment it
  is sent (its timestamp is the send's) and POSTed; the requests of a pass go concurrently,
  each bounded by `request_timeout_ms`, which must be shorter than the lease;
- a 2xx answer removes the notification; anything else (another status, no answer, a
  refused connection) schedules it again after a backoff with full jitter, doubling from
  `retry_base_ms` up to `retry_cap_ms`, until it has been tried `delivery_attempts_max`
  times; then it is dropped with a log line, as a real provider gives up. The outcomes of a
  pass are settled in one script.

A notification is delivered at least once (a crash between Kovra's 2xx and the removal sends
it again, with the same `webhook-id`), which Kovra's intake deduplicates by the event id.
"""

from __future__ import annotations

import asyncio
import random as _random
import time
from collections.abc import Callable
from typing import Any

import httpx
import msgspec
import structlog
from redis.asyncio import Redis

from ledger.invariants import ensure
from rails.adapter import next_attempt_delay_ms
from rails.collections.notifications import sign_body, webhook_for
from rails.collections.sandbox import namespace_default, notification_key, notifications_key

log = structlog.get_logger("kovra.rails.collections")

batch_size_max_default = 100
batch_size_limit = 1_000
delivery_attempts_max_default = 8
lease_ms_default = 30_000
request_timeout_ms_default = 10_000
retry_base_ms_default = 500
retry_cap_ms_default = 60_000
idle_seconds_default = 0.1
milliseconds_per_second = 1_000

# Claims up to ARGV[3] notifications due at ARGV[1] (ms), leasing each for ARGV[2] ms.
# KEYS[1] the due set; ARGV[4] the prefix of a notification's hash key. Replies per claimed
# notification {id, provider, body, attempts}; a due id whose hash expired is dropped.
_claim_lua = """
local due, now, lease, limit, prefix = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]),
  tonumber(ARGV[3]), ARGV[4]
local claimed = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, limit)) do
  local note = redis.call('HMGET', prefix .. id, 'provider', 'body', 'attempts')
  if note[1] then
    redis.call('ZADD', due, now + lease, id)
    claimed[#claimed + 1] = {id, note[1], note[2], note[3]}
  else
    redis.call('ZREM', due, id)
  end
end
return claimed
"""

# Settles a pass: per notification, from ARGV[1 + 3i]: id, verdict ('delivered', 'retry',
# 'dropped'), and for a retry the next due time (ms). KEYS[1] the due set; ARGV's last entry
# the hash key prefix. A retry of a notification no longer in the set (another notifier
# settled it after this one's lease ran out) is left alone.
_settle_lua = """
local due, prefix = KEYS[1], ARGV[#ARGV]
for i = 0, (#ARGV - 1) / 3 - 1 do
  local id, verdict, next_due = ARGV[1 + 3 * i], ARGV[2 + 3 * i], ARGV[3 + 3 * i]
  if verdict == 'retry' then
    if redis.call('ZSCORE', due, id) then
      redis.call('HINCRBY', prefix .. id, 'attempts', 1)
      redis.call('ZADD', due, next_due, id)
    end
  else
    redis.call('ZREM', due, id)
    redis.call('DEL', prefix .. id)
  end
end
return 1
"""

ClientSource = httpx.AsyncClient | Callable[[], httpx.AsyncClient]


class NotifierLimits(msgspec.Struct, frozen=True, kw_only=True):
    """The notifier's bounds: a pass's size, tries per notification, the lease, a request's
    timeout, and the retry backoff's base and cap."""

    batch_size_max: int = batch_size_max_default
    delivery_attempts_max: int = delivery_attempts_max_default
    lease_ms: int = lease_ms_default
    request_timeout_ms: int = request_timeout_ms_default
    retry_base_ms: int = retry_base_ms_default
    retry_cap_ms: int = retry_cap_ms_default

    def __post_init__(self) -> None:
        ensure(
            1 <= self.batch_size_max <= batch_size_limit,
            f"a pass sends 1 to {batch_size_limit} notifications",
        )
        ensure(self.delivery_attempts_max >= 1, "a notification is tried at least once")
        ensure(0 < self.request_timeout_ms < self.lease_ms, "a request ends before its lease")
        ensure(0 <= self.retry_base_ms <= self.retry_cap_ms, "retries need 0 <= base <= cap")


class SandboxNotifier:
    """Sends the sandbox providers' due notifications to Kovra, signed."""

    def __init__(
        self,
        redis: Redis,
        *,
        base_url: str,
        secret: str,
        client: ClientSource,
        namespace: str = namespace_default,
        limits: NotifierLimits | None = None,
        clock: Callable[[], float] = time.time,
        random: Callable[[], float] = _random.random,
    ) -> None:
        webhook_for(secret)  # A malformed secret fails here, at construction, not per send.
        self._redis = redis
        self._base_url = base_url.rstrip("/")
        self._secret = secret
        self._client_source = client
        self._client: httpx.AsyncClient | None = (
            client if isinstance(client, httpx.AsyncClient) else None
        )
        self._owns_client = not isinstance(client, httpx.AsyncClient)
        self._namespace = namespace
        self._limits = limits or NotifierLimits()
        self._clock = clock
        self._random = random
        self._claim = redis.register_script(_claim_lua)
        self._settle = redis.register_script(_settle_lua)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            source = self._client_source
            ensure(not isinstance(source, httpx.AsyncClient), "a given client is kept")
            self._client = source()  # type: ignore[operator]
        return self._client

    async def aclose(self) -> None:
        """Closes the HTTP client if the notifier made it (from the factory)."""
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    def url(self, provider: str) -> str:
        return f"{self._base_url}/v1/providers/{provider}/webhooks"

    async def deliver_due(self, now_ms: int | None = None) -> int:
        """One pass: claims, sends and settles up to `batch_size_max` due notifications.
        Returns how many were delivered (answered 2xx)."""
        now = round(self._clock() * milliseconds_per_second) if now_ms is None else now_ms
        prefix = notification_key(self._namespace, "")
        claimed: list[Any] = await self._claim(
            keys=[notifications_key(self._namespace)],
            args=[now, self._limits.lease_ms, self._limits.batch_size_max, prefix],
        )
        if not claimed:
            return 0
        outcomes = await asyncio.gather(*(self._send(note) for note in claimed))
        args: list[Any] = []
        delivered = 0
        for note, sent in zip(claimed, outcomes, strict=True):
            identifier, provider, attempts = _text(note[0]), _text(note[1]), int(note[3]) + 1
            if sent:
                delivered += 1
                args += (identifier, "delivered", "")
            elif attempts >= self._limits.delivery_attempts_max:
                log.warning(
                    "provider_notification_dropped",
                    notification_id=identifier,
                    provider=provider,
                    attempts=attempts,
                )
                args += (identifier, "dropped", "")
            else:
                delay_ms = next_attempt_delay_ms(
                    attempts,
                    base_ms=self._limits.retry_base_ms,
                    cap_ms=self._limits.retry_cap_ms,
                    random=self._random,
                )
                args += (identifier, "retry", now + delay_ms)
        await self._settle(keys=[notifications_key(self._namespace)], args=[*args, prefix])
        return delivered

    async def _send(self, note: list[Any]) -> bool:
        """Whether Kovra answered 2xx to one notification."""
        identifier, provider = _text(note[0]), _text(note[1])
        body = note[2] if isinstance(note[2], bytes) else note[2].encode()
        headers = sign_body(
            secret=self._secret,
            message_id=identifier,
            timestamp_seconds=int(self._clock()),
            body=body,
        )
        try:
            response = await self._http().post(
                self.url(provider),
                content=body,
                headers=headers,
                timeout=self._limits.request_timeout_ms / milliseconds_per_second,
            )
        except httpx.HTTPError as error:
            log.info("provider_notification_unsent", notification_id=identifier, error=str(error))
            return False
        return 200 <= response.status_code < 300

    async def run_forever(self, idle_seconds: float = idle_seconds_default) -> None:
        """Delivers until cancelled, pausing `idle_seconds` after a pass that found nothing
        (or met an error, logged and retried)."""
        ensure(idle_seconds > 0, "an idle pause is positive")
        while True:
            try:
                delivered = await self.deliver_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("provider_notifier_pass_failed", exc_info=True)
                delivered = 0
            if delivered == 0:
                await asyncio.sleep(idle_seconds)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
