"""The rails' memory (`rails.memory`) in Redis: every worker process sees what any of them
sent, and a worker's death forgets nothing.

One script reads what the rail knows of a receipt's UETR and end-to-end id and records the
receipt in the same step, so two workers racing to send one payment make one payment: one
of them is `received`, the other a `duplicate` answered as the first. The script takes a
batch of receipts (a rail answering a batch of messages) and decides them one after the
other in one atomic step, so a batch costs one round trip, and a payment twice in a batch is
received once. The keys, under a namespace (`kovra` by default):

- `{ns}:rail:{rail}:uetr:{uetr}`, a hash: the payment as first received (its end-to-end
  id, the message that carried it, the answer given: outcome, ISO reason, pacs.002) and the
  count of duplicate receipts since;
- `{ns}:rail:{rail}:e2e:{end_to_end_id}`: the UETR that end-to-end id was received under;
- `{ns}:rail:receipts`, a stream with one entry per receipt (`received`, `duplicate` or
  `conflict`, with the rail, UETR, end-to-end id and message id): what tests and operators
  watch (`XRANGE`, or `XREAD BLOCK` to see each receipt as it comes).

Every key expires after the duplicate-check window, and the stream drops its entries older
than the window as new ones arrive. A payment costs about a kilobyte and a half for that
long (its pacs.002 is most of it), so a sandbox paying millions a day keeps gigabytes: a
load test shortens the window.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import msgspec
from redis.asyncio import Redis

from ledger.invariants import ensure, unreachable
from rails.adapter import RailResponse, rail_batch_size_max
from rails.corridors import Rail
from rails.memory import (
    Recall,
    Receipt,
    Verdict,
    duplicate_window_seconds_default,
    duplicate_window_seconds_max,
)

namespace_default = "kovra"
receipts_suffix = "rail:receipts"
milliseconds_per_second = 1_000

# Receives a batch of receipts, one after the other, as one atomic step: each sees what the
# ones before it recorded, so a payment twice in a batch is received, then a duplicate.
# KEYS[1] the receipts stream; then per receipt i (from 0), KEYS[2 + 2i] the UETR's payment
# and KEYS[3 + 2i] the end-to-end id's UETR. ARGV[1] the window (s); then per receipt i,
# from ARGV[2 + 7i]: UETR, end-to-end id, rail, message id, outcome, ISO reason ('' for
# none), pacs.002. Replies one entry per receipt, in order: {'received'},
# {'duplicate', outcome, reason, pacs.002} or {'conflict'}.
_receive_many_lua = """
local window_seconds = tonumber(ARGV[1])
local stream = KEYS[1]
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local replies = {}
for i = 0, (#KEYS - 1) / 2 - 1 do
  local payment_key, end_to_end_key = KEYS[2 + 2 * i], KEYS[3 + 2 * i]
  local a = 1 + 7 * i
  local uetr, end_to_end_id = ARGV[a + 1], ARGV[a + 2]
  local known_end_to_end_id = redis.call('HGET', payment_key, 'end_to_end_id')
  local known_uetr = redis.call('GET', end_to_end_key)
  local reply
  if not known_end_to_end_id and not known_uetr then
    redis.call('HSET', payment_key, 'end_to_end_id', end_to_end_id, 'message_id', ARGV[a + 4],
               'outcome', ARGV[a + 5], 'reason_code', ARGV[a + 6], 'pacs002', ARGV[a + 7],
               'duplicates', 0)
    redis.call('EXPIRE', payment_key, window_seconds)
    redis.call('SET', end_to_end_key, uetr, 'EX', window_seconds)
    reply = {'received'}
  elseif known_end_to_end_id == end_to_end_id and known_uetr == uetr then
    redis.call('HINCRBY', payment_key, 'duplicates', 1)
    local first = redis.call('HMGET', payment_key, 'outcome', 'reason_code', 'pacs002')
    reply = {'duplicate', first[1], first[2], first[3]}
  else
    reply = {'conflict'}
  end
  redis.call('XADD', stream, '*', 'verdict', reply[1], 'rail', ARGV[a + 3], 'uetr', uetr,
             'end_to_end_id', end_to_end_id, 'message_id', ARGV[a + 4])
  replies[i + 1] = reply
end
redis.call('XTRIM', stream, 'MINID', tostring(now_ms - window_seconds * 1000))
redis.call('EXPIRE', stream, window_seconds)
return replies
"""


class RememberedPayment(msgspec.Struct, frozen=True, kw_only=True):
    """A payment a rail made, as it remembers it."""

    rail: Rail
    uetr: uuid.UUID
    end_to_end_id: str
    message_id: str  # The message that first carried it.
    answer: RailResponse
    duplicates: int  # Receipts of it since the first, each answered as the first.


class LoggedReceipt(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of the receipts stream."""

    stream_id: str  # Redis's entry id: pass it as `after` to read what came since.
    verdict: Verdict
    rail: Rail
    uetr: uuid.UUID
    end_to_end_id: str
    message_id: str


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _answer(outcome: bytes | str, reason_code: bytes | str, pacs002: bytes | str) -> RailResponse:
    reason = _text(reason_code)
    report = pacs002.encode() if isinstance(pacs002, str) else pacs002
    decoded = _text(outcome)
    if decoded == "accepted":
        return RailResponse(outcome="accepted", reason_code=reason or None, pacs002=report)
    if decoded == "rejected":
        return RailResponse(outcome="rejected", reason_code=reason or None, pacs002=report)
    unreachable(f"a rail's memory holds an answer it never gives: {decoded!r}")


class RedisRailMemory:
    """`RailMemory` in Redis, shared by every process that opens it on the same namespace."""

    def __init__(
        self,
        redis: Redis,
        *,
        namespace: str = namespace_default,
        window_seconds: int = duplicate_window_seconds_default,
    ) -> None:
        ensure(
            1 <= window_seconds <= duplicate_window_seconds_max,
            f"a rail remembers payments for 1 s to {duplicate_window_seconds_max} s",
        )
        self._redis = redis
        self._namespace = namespace
        self._window_seconds = window_seconds
        self._receive_many = redis.register_script(_receive_many_lua)

    @property
    def receipts_key(self) -> str:
        """The stream of receipts, for `XREAD BLOCK` by whoever watches the rails."""
        return f"{self._namespace}:{receipts_suffix}"

    def _payment_key(self, rail: Rail, uetr: uuid.UUID) -> str:
        return f"{self._namespace}:rail:{rail.value}:uetr:{uetr}"

    def _end_to_end_key(self, rail: Rail, end_to_end_id: str) -> str:
        return f"{self._namespace}:rail:{rail.value}:e2e:{end_to_end_id}"

    async def receive(self, receipt: Receipt) -> Recall:
        (recall,) = await self.receive_many([receipt])
        return recall

    async def receive_many(self, receipts: Sequence[Receipt]) -> list[Recall]:
        """Every receipt decided in order by one script: one round trip, one atomic step."""
        ensure(
            len(receipts) <= rail_batch_size_max,
            f"a rail receives at most {rail_batch_size_max} payments at once, not {len(receipts)}",
        )
        if not receipts:
            return []
        keys = [self.receipts_key]
        args: list[str | bytes | int] = [self._window_seconds]
        for receipt in receipts:
            answer = receipt.answer
            keys += (
                self._payment_key(receipt.rail, receipt.uetr),
                self._end_to_end_key(receipt.rail, receipt.end_to_end_id),
            )
            args += (
                str(receipt.uetr),
                receipt.end_to_end_id,
                receipt.rail.value,
                receipt.message_id,
                answer.outcome,
                answer.reason_code or "",
                answer.pacs002 or b"",
            )
        replies = await self._receive_many(keys=keys, args=args)
        ensure(len(replies) == len(receipts), "the receipt script answers every receipt")
        return [_recall(receipt, reply) for receipt, reply in zip(receipts, replies, strict=True)]

    async def payment(self, *, rail: Rail, uetr: uuid.UUID) -> RememberedPayment | None:
        """The payment `rail` made under `uetr`, or None if it remembers none."""
        fields = await self._redis.hgetall(self._payment_key(rail, uetr))
        if not fields:
            return None
        values = {_text(name): value for name, value in fields.items()}
        return RememberedPayment(
            rail=rail,
            uetr=uetr,
            end_to_end_id=_text(values["end_to_end_id"]),
            message_id=_text(values["message_id"]),
            answer=_answer(values["outcome"], values["reason_code"], values["pacs002"]),
            duplicates=int(values["duplicates"]),
        )

    async def receipts(
        self, *, after: str = "0-0", block_ms: int | None = None
    ) -> list[LoggedReceipt]:
        """The receipts logged after the entry `after`, oldest first. With `block_ms`, waits
        up to that long for one when there is none yet (a blocking read: give it a Redis
        client of its own, not one whose commands other callers share)."""
        ensure(block_ms is None or block_ms > 0, "a wait is bounded and positive")
        streams: Any = await self._redis.xread({self.receipts_key: after}, block=block_ms)
        # RESP2 answers a list of [stream, entries] pairs, RESP3 a map of stream to entries.
        pairs = streams.items() if isinstance(streams, dict) else streams
        return [
            _logged(entry_id, fields)
            for _, stream_entries in pairs
            for entry_id, fields in stream_entries
        ]


def _recall(receipt: Receipt, reply: list[Any]) -> Recall:
    """What the receipt script decided for one receipt."""
    verdict = _text(reply[0])
    if verdict == "received":
        return Recall(verdict="received", answer=receipt.answer)
    if verdict == "duplicate":
        return Recall(verdict="duplicate", answer=_answer(reply[1], reply[2], reply[3]))
    if verdict == "conflict":
        return Recall(verdict="conflict", answer=None)
    unreachable(f"the receipt script replied {reply!r}")


def _logged(entry_id: bytes | str, fields: dict[Any, Any]) -> LoggedReceipt:
    values = {_text(name): _text(value) for name, value in fields.items()}
    return LoggedReceipt(
        stream_id=_text(entry_id),
        verdict=msgspec.convert(values["verdict"], Verdict),
        rail=Rail(values["rail"]),
        uetr=uuid.UUID(values["uetr"]),
        end_to_end_id=values["end_to_end_id"],
        message_id=values["message_id"],
    )
