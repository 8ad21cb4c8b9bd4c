"""The sandbox mandate provider: one per scheme, answering by the tenant's `reference` as SPEC
§10 says, and notifying Kovra of each outcome later, as a real provider does.

| reference starts with | mandate                              | collection                       |
|-----------------------|--------------------------------------|----------------------------------|
| `sandbox:fail:CODE`   | `mandate.failed` with CODE           | `collection.failed` with CODE    |
| `sandbox:return:CODE` | `mandate.active`                     | `collection.succeeded`, then     |
|                       |                                      | `collection.returned` with CODE  |
| `sandbox:decline`     | stays pending, no notification       | `collection.succeeded`           |
| `sandbox:balance:N`   | `mandate.active`, balance N reported | `collection.succeeded`           |
| anything else         | `mandate.active`                     | `collection.succeeded`           |

CODE is one to eight uppercase letters or digits ending there; a code the scheme does not
know fails with the scheme's "reason not given" code (SEPA MS03, Bacs 0, PayWithAccount 96),
so every code the sandbox sends has a description. `create_mandates` and `collect` answer
`pending`; the outcome's notification is due `notification_delay_ms` later (200 ms by
default) and a return's `return_delay_ms` after that (3 s by default). A collection is
refused at once (`failed`, no notification) when its mandate was deactivated (the scheme's
"mandate cancelled" code: SEPA MD01, Bacs 1, PayWithAccount MNDCNL), when its mandate is not
active at the sandbox (unknown, failed, declined, or not yet active: SEPA MD01, Bacs 6,
PayWithAccount MNDCNL), or when its amount or currency is not one the scheme carries (SEPA
and Bacs AM02/AM03, PayWithAccount 13/AM03).

The sandbox is deterministic and idempotent on Kovra's ids: a mandate's provider reference
is `SBX-M-` and the mandate id in 25 base-36 digits (31 characters, within SEPA's 35 for a
mandate reference), a collection's `SBX-C-` and its id; a second
request for the same id answers as the first did and schedules nothing new. Its state lives
in Redis under a namespace, so every worker process shares it and a restart forgets nothing:

- `{ns}:collections:{provider}:mandate:{reference}` and `...:collection:{reference}`, hashes
  holding the outcome, its reason code and the time it takes effect (and a collection's
  return), so `lookup_collection` answers the state as of now without any worker running;
- `{ns}:collections:notifications`, a sorted set of notification ids by due time (Unix ms),
  and `{ns}:collections:notification:{id}`, each notification's provider and body, which the
  `SandboxNotifier` sends. A notification's id derives from its provider, type and reference,
  so the same outcome is never scheduled twice.

A mandate whose reference is `sandbox:balance:N` (N minor units, up to
`balance_minor_max`) has an account whose balance `balance` reports: N less the amounts of
the collections the sandbox accepted to succeed under it (counted when it accepts them; a
later return does not give them back, and the balance may go below zero). Every other
mandate's balance is None, as a real provider's.

Each batch is decided by one script in one round trip, request after request, so a request
twice in a batch is recorded once. Every key expires after `state_ttl_seconds` (30 days by
default).
"""

from __future__ import annotations

import datetime
import hashlib
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from redis.asyncio import Redis

from ledger.invariants import ensure, unreachable
from rails.collections.notifications import NotificationBody, NotificationData, encode_body
from rails.collections.provider import (
    CollectionAnswer,
    CollectionLookup,
    CollectionRequest,
    CollectionRun,
    MandateAnswer,
    MandateRequest,
    NotificationType,
    ProviderName,
    provider_batch_size_max,
)
from rails.collections.scheme import Scheme

namespace_default = "kovra"
notification_delay_ms_default = 200
return_delay_ms_default = 3_000
state_ttl_seconds_default = 30 * 24 * 3_600
milliseconds_per_second = 1_000
fail_prefix = "sandbox:fail:"
return_prefix = "sandbox:return:"
decline_prefix = "sandbox:decline"
balance_prefix = "sandbox:balance:"
# The largest balance a sandbox mandate may be given: a hundred billion major units.
balance_minor_max = 10**13
mandate_reference_prefix = "SBX-M-"
collection_reference_prefix = "SBX-C-"
notification_id_digest_hex = 32
_base36_digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
base36_digits_128_bits = 25  # 36**25 > 2**128: every 128-bit id in 25 digits.
_code_after = r"([A-Z0-9]{1,8})(?![A-Za-z0-9])"
_fail_pattern = re.compile(re.escape(fail_prefix) + _code_after)
_return_pattern = re.compile(re.escape(return_prefix) + _code_after)
_balance_pattern = re.compile(re.escape(balance_prefix) + r"([0-9]{1,14})(?![0-9])")


class ProviderReferenceUnknown(LookupError):
    """The provider knows no object by this reference."""


# Records a batch of mandates. KEYS[1] the due notifications; then per mandate i (from 0)
# KEYS[2 + 2i] its hash and KEYS[3 + 2i] its notification's hash. ARGV[1] the keys' time to
# live (s), ARGV[2] the provider; per mandate, from ARGV[3 + 6i]: outcome, reason code ('' for
# none), effective time (ms), notification id ('' for none), notification body, the
# account's balance ('' for none).
_create_mandates_lua = """
local ttl, provider, due = tonumber(ARGV[1]), ARGV[2], KEYS[1]
for i = 0, (#KEYS - 1) / 2 - 1 do
  local mandate_key, note_key = KEYS[2 + 2 * i], KEYS[3 + 2 * i]
  local a = 2 + 6 * i
  if redis.call('EXISTS', mandate_key) == 0 then
    redis.call('HSET', mandate_key, 'outcome', ARGV[a + 1], 'reason_code', ARGV[a + 2],
               'effective_at_ms', ARGV[a + 3], 'deactivated', '0',
               'balance_minor', ARGV[a + 6], 'collected_minor', 0)
    redis.call('EXPIRE', mandate_key, ttl)
    if ARGV[a + 4] ~= '' then
      redis.call('HSET', note_key, 'provider', provider, 'body', ARGV[a + 5], 'attempts', 0)
      redis.call('EXPIRE', note_key, ttl)
      redis.call('ZADD', due, ARGV[a + 3], ARGV[a + 4])
    end
  end
end
return #KEYS
"""

# Records a batch of collections and answers each. KEYS[1] the due notifications; per
# collection i, KEYS[2 + 4i] its hash, KEYS[3 + 4i] its mandate's hash, KEYS[4 + 4i] and
# KEYS[5 + 4i] its notifications' hashes (outcome, return). ARGV[1] time to live (s), ARGV[2]
# now (ms), ARGV[3] the mandate-cancelled code, ARGV[4] the no-mandate code, ARGV[5] the
# provider; per collection, from ARGV[6 + 11i]: outcome, reason code, effective time (ms),
# return reason code ('' for none), return time (ms, '' for none), refusal code ('' for
# none), outcome notification id and body, return notification id ('' for none) and body,
# amount (minor units). Replies {answer, reason code} per collection. A collection accepted
# to succeed is counted against its mandate's account (`collected_minor`).
_collect_lua = """
local ttl, now, due = tonumber(ARGV[1]), tonumber(ARGV[2]), KEYS[1]
local cancelled_code, no_mandate_code, provider = ARGV[3], ARGV[4], ARGV[5]
local replies = {}
local function schedule(key, id, body, at)
  redis.call('HSET', key, 'provider', provider, 'body', body, 'attempts', 0)
  redis.call('EXPIRE', key, ttl)
  redis.call('ZADD', due, at, id)
end
for i = 0, (#KEYS - 1) / 4 - 1 do
  local collection_key, mandate_key = KEYS[2 + 4 * i], KEYS[3 + 4 * i]
  local a = 5 + 11 * i
  local known = redis.call('HMGET', collection_key, 'answer', 'answer_reason_code')
  if known[1] then
    replies[i + 1] = {known[1], known[2]}
  else
    local mandate = redis.call('HMGET', mandate_key, 'outcome', 'effective_at_ms', 'deactivated')
    local refusal = ARGV[a + 6]
    if mandate[3] == '1' then
      refusal = cancelled_code
    elseif mandate[1] ~= 'active' or tonumber(mandate[2]) > now then
      refusal = no_mandate_code
    end
    if refusal ~= '' then
      redis.call('HSET', collection_key, 'answer', 'failed', 'answer_reason_code', refusal,
                 'outcome', 'failed', 'reason_code', refusal, 'effective_at_ms', now,
                 'return_reason_code', '', 'returned_at_ms', '')
      replies[i + 1] = {'failed', refusal}
    else
      redis.call('HSET', collection_key, 'answer', 'pending', 'answer_reason_code', '',
                 'outcome', ARGV[a + 1], 'reason_code', ARGV[a + 2],
                 'effective_at_ms', ARGV[a + 3], 'return_reason_code', ARGV[a + 4],
                 'returned_at_ms', ARGV[a + 5])
      if ARGV[a + 1] == 'succeeded' then
        redis.call('HINCRBY', mandate_key, 'collected_minor', ARGV[a + 11])
      end
      schedule(KEYS[4 + 4 * i], ARGV[a + 7], ARGV[a + 8], ARGV[a + 3])
      if ARGV[a + 9] ~= '' then
        schedule(KEYS[5 + 4 * i], ARGV[a + 9], ARGV[a + 10], ARGV[a + 5])
      end
      replies[i + 1] = {'pending', ''}
    end
    redis.call('EXPIRE', collection_key, ttl)
  end
end
return replies
"""

# Marks a known mandate deactivated; an unknown one is left unknown.
_deactivate_lua = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'deactivated', '1')
end
return 1
"""


def _base36(value: int) -> str:
    digits = ""
    while True:
        value, digit = divmod(value, len(_base36_digits))
        digits = _base36_digits[digit] + digits
        if value == 0:
            return digits.rjust(base36_digits_128_bits, "0")


def mandate_reference(mandate_id: int) -> str:
    """The sandbox's reference of Kovra's mandate: 31 characters, within SEPA's 35 for a
    mandate reference (MndtId) and its character set."""
    return mandate_reference_prefix + _base36(mandate_id)


def collection_reference(collection_id: int) -> str:
    return collection_reference_prefix + _base36(collection_id)


def notification_id(provider: ProviderName, kind: NotificationType, reference: str) -> str:
    """The id of the one notification of `kind` about `reference`: the same every time."""
    digest = hashlib.sha256(f"{provider.value}:{kind}:{reference}".encode()).hexdigest()
    return "msg_" + digest[:notification_id_digest_hex]


def notifications_key(namespace: str) -> str:
    """The sorted set of due notifications, shared by every sandbox provider."""
    return f"{namespace}:collections:notifications"


def notification_key(namespace: str, notification: str) -> str:
    return f"{namespace}:collections:notification:{notification}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class SandboxProvider:
    """A `MandateProvider` simulating `scheme`'s provider, its state in Redis."""

    def __init__(
        self,
        scheme: Scheme,
        *,
        redis: Redis,
        namespace: str = namespace_default,
        notification_delay_ms: int = notification_delay_ms_default,
        return_delay_ms: int = return_delay_ms_default,
        state_ttl_seconds: int = state_ttl_seconds_default,
        clock: Callable[[], float] = time.time,
    ) -> None:
        ensure(notification_delay_ms >= 0, "a notification delay is not negative")
        ensure(return_delay_ms >= 0, "a return delay is not negative")
        ensure(state_ttl_seconds >= 1, "the sandbox keeps its state at least a second")
        self._scheme = scheme
        self._redis = redis
        self._namespace = namespace
        self._notification_delay_ms = notification_delay_ms
        self._return_delay_ms = return_delay_ms
        self._state_ttl_seconds = state_ttl_seconds
        self._clock = clock
        self._create_mandates = redis.register_script(_create_mandates_lua)
        self._collect = redis.register_script(_collect_lua)
        self._deactivate = redis.register_script(_deactivate_lua)

    @property
    def name(self) -> ProviderName:
        return self._scheme.name

    @property
    def currency(self) -> str:
        return self._scheme.currency

    @property
    def scheme(self) -> Scheme:
        return self._scheme

    def validate_bank_details(self, bank_details: Mapping[str, str]) -> dict[str, str]:
        return self._scheme.validate_bank_details(bank_details)

    def reason_description(self, reason_code: str) -> str:
        return self._scheme.reason_description(reason_code)

    def is_mandate_fatal(self, reason_code: str) -> bool:
        return self._scheme.is_mandate_fatal(reason_code)

    def _now_ms(self) -> int:
        return round(self._clock() * milliseconds_per_second)

    def _key(self, kind: str, reference: str) -> str:
        return f"{self._namespace}:collections:{self._scheme.name.value}:{kind}:{reference}"

    def _code(self, match: re.Match[str] | None) -> str:
        """The code a `sandbox:fail:`/`sandbox:return:` reference names, if the scheme has it."""
        if match is not None and self._scheme.knows_reason(match.group(1)):
            return match.group(1)
        return self._scheme.unspecified_code

    def _body(
        self, kind: NotificationType, reference: str, *, amount_minor: int | None, reason: str
    ) -> tuple[str, bytes]:
        identifier = notification_id(self._scheme.name, kind, reference)
        data = NotificationData(
            reference=reference,
            amount=amount_minor,
            currency=self._scheme.currency,
            reason_code=reason or None,
        )
        return identifier, encode_body(NotificationBody(id=identifier, type=kind, data=data))

    def _mandate_args(self, request: MandateRequest, now_ms: int) -> tuple[list[str], list[Any]]:
        reference = mandate_reference(request.mandate_id)
        keys = [self._key("mandate", reference)]
        at_ms = now_ms + self._notification_delay_ms
        if request.reference.startswith(fail_prefix):
            code = self._code(_fail_pattern.match(request.reference))
            identifier, body = self._body(
                "mandate.failed", reference, amount_minor=None, reason=code
            )
            args: list[Any] = ["failed", code, at_ms, identifier, body]
        elif request.reference.startswith(decline_prefix):
            identifier = notification_id(self._scheme.name, "mandate.active", reference)
            args = ["pending", "", at_ms, "", b""]
        else:
            identifier, body = self._body("mandate.active", reference, amount_minor=None, reason="")
            args = ["active", "", at_ms, identifier, body]
        keys.append(notification_key(self._namespace, identifier))
        return keys, [*args, _opening_balance(request.reference)]

    async def create_mandates(self, requests: Sequence[MandateRequest]) -> list[MandateAnswer]:
        """Every mandate `pending`; its outcome notified `notification_delay_ms` later."""
        ensure(
            len(requests) <= provider_batch_size_max,
            f"a provider batch holds at most {provider_batch_size_max} requests",
        )
        if not requests:
            return []
        now_ms = self._now_ms()
        keys = [notifications_key(self._namespace)]
        args: list[Any] = [self._state_ttl_seconds, self._scheme.name.value]
        for request in requests:
            request_keys, request_args = self._mandate_args(request, now_ms)
            keys += request_keys
            args += request_args
        await self._create_mandates(keys=keys, args=args)
        return [
            MandateAnswer(outcome="pending", provider_reference=mandate_reference(r.mandate_id))
            for r in requests
        ]

    def _refusal(self, request: CollectionRequest) -> str:
        """The code the scheme refuses this collection with before sending it, or ''."""
        if request.currency != self._scheme.currency:
            return self._scheme.invalid_currency_code
        if not 0 < request.amount_minor <= self._scheme.amount_max_minor:
            return self._scheme.invalid_amount_code
        return ""

    def _collection_args(
        self, request: CollectionRequest, now_ms: int
    ) -> tuple[list[str], list[Any]]:
        reference = collection_reference(request.collection_id)
        at_ms = now_ms + self._notification_delay_ms
        amount = request.amount_minor
        return_code, returned_at = "", ""
        if request.reference.startswith(fail_prefix):
            outcome, code = "failed", self._code(_fail_pattern.match(request.reference))
            first = self._body("collection.failed", reference, amount_minor=amount, reason=code)
        else:
            outcome, code = "succeeded", ""
            first = self._body("collection.succeeded", reference, amount_minor=amount, reason="")
        second: tuple[str, bytes] = ("", b"")
        if outcome == "succeeded" and request.reference.startswith(return_prefix):
            return_code = self._code(_return_pattern.match(request.reference))
            returned_at = str(at_ms + self._return_delay_ms)
            second = self._body(
                "collection.returned", reference, amount_minor=amount, reason=return_code
            )
        keys = [
            self._key("collection", reference),
            self._key("mandate", request.mandate_provider_reference),
            notification_key(self._namespace, first[0]),
            notification_key(self._namespace, second[0] or first[0]),
        ]
        args = [outcome, code, at_ms, return_code, returned_at, self._refusal(request)]
        return keys, [*args, first[0], first[1], second[0], second[1], amount]

    async def collect(self, requests: Sequence[CollectionRequest]) -> CollectionRun:
        """Every collection `pending` (its outcome notified later) or `failed` at once when
        the sandbox refuses it; and the run's message, as the scheme builds it."""
        ensure(
            len(requests) <= provider_batch_size_max,
            f"a provider batch holds at most {provider_batch_size_max} requests",
        )
        if not requests:
            return CollectionRun(answers=[], message=None)
        now_ms = self._now_ms()
        scheme = self._scheme
        keys = [notifications_key(self._namespace)]
        args: list[Any] = [
            self._state_ttl_seconds,
            now_ms,
            scheme.mandate_cancelled_code,
            scheme.no_mandate_code,
            scheme.name.value,
        ]
        for request in requests:
            request_keys, request_args = self._collection_args(request, now_ms)
            keys += request_keys
            args += request_args
        replies = await self._collect(keys=keys, args=args)
        ensure(len(replies) == len(requests), "the collect script answers every request")
        answers = [
            _collection_answer(request, reply)
            for request, reply in zip(requests, replies, strict=True)
        ]
        message = scheme.collection_message(
            [r for r, a in zip(requests, answers, strict=True) if a.outcome == "pending"],
            created_at=_moment(now_ms),
        )
        return CollectionRun(answers=answers, message=message)

    async def lookup_collection(self, provider_reference: str) -> CollectionLookup:
        """The collection's state as of now; `ProviderReferenceUnknown` if there is none."""
        fields = await self._redis.hgetall(self._key("collection", provider_reference))
        if not fields:
            raise ProviderReferenceUnknown(f"{self.name.value} knows no {provider_reference!r}")
        values = {_text(name): _text(value) for name, value in fields.items()}
        now_ms = self._now_ms()
        if now_ms < int(values["effective_at_ms"]):
            return CollectionLookup(status="pending")
        if values["outcome"] == "failed":
            return CollectionLookup(status="failed", reason_code=values["reason_code"])
        returned_at = values["returned_at_ms"]
        if returned_at and now_ms >= int(returned_at):
            return CollectionLookup(status="returned", reason_code=values["return_reason_code"])
        return CollectionLookup(status="succeeded")

    async def deactivate_mandate(self, provider_reference: str) -> None:
        """Later collections under the mandate fail with the scheme's cancelled code."""
        await self._deactivate(keys=[self._key("mandate", provider_reference)], args=[])

    async def balance(self, provider_reference: str) -> int | None:
        """A `sandbox:balance:N` mandate's N less what the sandbox accepted to collect under
        it; None for any other mandate, and for one the sandbox does not know."""
        opening, collected = await self._redis.hmget(
            self._key("mandate", provider_reference), ["balance_minor", "collected_minor"]
        )
        if opening is None or _text(opening) == "":
            return None
        return int(_text(opening)) - int(_text(collected or b"0"))


def _opening_balance(reference: str) -> str:
    """The balance a `sandbox:balance:N` reference gives the mandate's account ('' for none:
    a reference of another form, or an N past `balance_minor_max`)."""
    match = _balance_pattern.match(reference)
    if match is None or int(match.group(1)) > balance_minor_max:
        return ""
    return match.group(1)


def _moment(now_ms: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(now_ms / milliseconds_per_second, tz=datetime.UTC)


def _collection_answer(request: CollectionRequest, reply: list[Any]) -> CollectionAnswer:
    answer, reason = _text(reply[0]), _text(reply[1])
    reference = collection_reference(request.collection_id)
    if answer == "pending":
        return CollectionAnswer(outcome="pending", provider_reference=reference)
    if answer == "failed":
        return CollectionAnswer(outcome="failed", provider_reference=reference, reason_code=reason)
    unreachable(f"the collect script answered {reply!r}")
