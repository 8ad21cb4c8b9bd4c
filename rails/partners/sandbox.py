"""The sandbox partner: a partner institution simulated in Redis, answering by the partner's
`reference` as the sandbox rails answer by a payment's (SPEC §11).

| the partner's reference        | every order sent to it                                    |
|--------------------------------|-----------------------------------------------------------|
| `sandbox:fail:CODE`            | `PartnerRejected(CODE)`                                   |
| `sandbox:unavailable`          | `PartnerUnavailable`, always                              |
| `sandbox:flaky:N`              | `PartnerUnavailable` on the order's first N sends, then   |
|                                | accepted                                                  |
| anything else                  | accepted                                                  |

CODE is 1 to 32 letters, digits, `_`, `.` or `-` ending the reference; another text after
`sandbox:fail:` is rejected with `unspecified`. N is a whole number from 1 to 100 ending the
reference; a reference that only starts like `sandbox:flaky:` is accepted.

Like a real partner keying on Kovra's order id, the sandbox is idempotent by order id
across every process sharing its Redis: the first answer that settles an order (a receipt
or a rejection) is kept and answered again to every later send, so an order is paid at most
once. Each order lives in one hash, `{ns}:partners:sandbox:order:{order id in hex}`, holding
its sends, its outcome and its payments (`payments(order_id)`, which stays 1 however often
the order is sent: what tests use to prove nothing is paid twice). One script decides a send
atomically. Keys expire after `state_ttl_seconds` (30 days by default).
"""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Callable
from typing import Literal

from redis.asyncio import Redis

from ledger.invariants import ensure, unreachable
from rails.partners.partner import (
    PartnerAdapter,
    PartnerOrder,
    PartnerReceipt,
    PartnerRejected,
    PartnerUnavailable,
    rejection_code_length_max,
)

namespace_default = "kovra"
state_ttl_seconds_default = 30 * 24 * 3_600
milliseconds_per_second = 1_000
flaky_sends_max = 100
fail_prefix = "sandbox:fail:"
unavailable_reference = "sandbox:unavailable"
flaky_prefix = "sandbox:flaky:"
unspecified_code = "unspecified"
receipt_prefix = "SBX-P-"
_base36_digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
base36_digits_128_bits = 25  # 36**25 > 2**128: every 128-bit id in 25 digits.
_fail_pattern = re.compile(
    re.escape(fail_prefix) + rf"([A-Za-z0-9_.-]{{1,{rejection_code_length_max}}})"
)
_flaky_pattern = re.compile(re.escape(flaky_prefix) + r"([0-9]{1,3})")

Behaviour = Literal["accept", "reject", "unavailable", "flaky"]

# Decides one send of one order. KEYS[1] the order's hash. ARGV: behaviour ('accept',
# 'reject', 'unavailable', 'flaky'), the rejection code, the flaky sends N, the receipt's
# reference, now (ms), the keys' time to live (s). An order already settled answers as it was
# settled; otherwise this send is counted and decided. Replies {outcome, value, accepted at}:
# {'accepted', reference, ms}, {'rejected', code, ''} or {'unavailable', '', ''}.
_send_lua = """
local key, behaviour = KEYS[1], ARGV[1]
local ttl = tonumber(ARGV[6])
local sends = redis.call('HINCRBY', key, 'sends', 1)
redis.call('EXPIRE', key, ttl)
local settled = redis.call('HMGET', key, 'outcome', 'value', 'accepted_at_ms')
if settled[1] then
  return {settled[1], settled[2], settled[3] or ''}
end
if behaviour == 'unavailable' or (behaviour == 'flaky' and sends <= tonumber(ARGV[3])) then
  return {'unavailable', '', ''}
end
if behaviour == 'reject' then
  redis.call('HSET', key, 'outcome', 'rejected', 'value', ARGV[2])
  return {'rejected', ARGV[2], ''}
end
redis.call('HSET', key, 'outcome', 'accepted', 'value', ARGV[4], 'accepted_at_ms', ARGV[5])
redis.call('HINCRBY', key, 'payments', 1)
return {'accepted', ARGV[4], ARGV[5]}
"""


def behaviour_of(reference: str) -> tuple[Behaviour, str, int]:
    """What the sandbox does with every order sent to a partner of this reference: the
    behaviour, the rejection code (for `reject`) and N (for `flaky`)."""
    if reference.startswith(fail_prefix):
        matched = _fail_pattern.fullmatch(reference)
        return "reject", unspecified_code if matched is None else matched.group(1), 0
    if reference == unavailable_reference:
        return "unavailable", "", 0
    flaky = _flaky_pattern.fullmatch(reference)
    if flaky is not None and 1 <= int(flaky.group(1)) <= flaky_sends_max:
        return "flaky", "", int(flaky.group(1))
    return "accept", "", 0


def receipt_reference(order_id: int) -> str:
    """The sandbox's own id of an order's payment: 31 characters, the same every time."""
    digits = ""
    value = order_id
    while True:
        value, digit = divmod(value, len(_base36_digits))
        digits = _base36_digits[digit] + digits
        if value == 0:
            return receipt_prefix + digits.rjust(base36_digits_128_bits, "0")


def order_key(namespace: str, order_id: int) -> str:
    return f"{namespace}:partners:sandbox:order:{order_id:032x}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class SandboxPartner:
    """A `Partner` simulated in Redis for one partner (its id and reference)."""

    def __init__(
        self,
        *,
        partner_id: int,
        reference: str,
        redis: Redis,
        namespace: str = namespace_default,
        state_ttl_seconds: int = state_ttl_seconds_default,
        clock: Callable[[], float] = time.time,
    ) -> None:
        ensure(partner_id > 0, "a sandbox partner is a partner of Kovra's")
        ensure(state_ttl_seconds >= 1, "the sandbox keeps its state at least a second")
        self._partner_id = partner_id
        self._behaviour = behaviour_of(reference)
        self._redis = redis
        self._namespace = namespace
        self._state_ttl_seconds = state_ttl_seconds
        self._clock = clock
        self._send = redis.register_script(_send_lua)

    @property
    def adapter(self) -> PartnerAdapter:
        return "sandbox"

    async def send(self, order: PartnerOrder) -> PartnerReceipt:
        """The order's receipt (the first one, when it was accepted before); `PartnerRejected`
        or `PartnerUnavailable` as the partner's reference says."""
        ensure(order.partner_id == self._partner_id, "an order goes to the partner it names")
        behaviour, code, flaky_sends = self._behaviour
        now_ms = round(self._clock() * milliseconds_per_second)
        reply = await self._send(
            keys=[order_key(self._namespace, order.order_id)],
            args=[
                behaviour,
                code,
                flaky_sends,
                receipt_reference(order.order_id),
                now_ms,
                self._state_ttl_seconds,
            ],
        )
        outcome, value, accepted_at_ms = (_text(part) for part in reply)
        if outcome == "accepted":
            accepted_at = datetime.datetime.fromtimestamp(
                int(accepted_at_ms) / milliseconds_per_second, tz=datetime.UTC
            )
            return PartnerReceipt(
                order_id=order.order_id, partner_reference=value, accepted_at=accepted_at
            )
        if outcome == "rejected":
            raise PartnerRejected(value, "the sandbox partner rejects every order (its reference)")
        if outcome == "unavailable":
            raise PartnerUnavailable("the sandbox partner did not answer (its reference)")
        unreachable(f"the sandbox partner's script answered {outcome!r}")

    async def payments(self, order_id: int) -> int:
        """How many times the sandbox paid the order: 0 or 1, whatever was sent."""
        paid = await self._redis.hget(order_key(self._namespace, order_id), "payments")
        return 0 if paid is None else int(paid)
