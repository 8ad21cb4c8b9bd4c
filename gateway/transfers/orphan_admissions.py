"""Admissions whose payout never reached the ledger: their daily-limit count and quote go back.

A transfer is admitted in Redis (its payout counted against the daily limit, its quote
marked used by it) before its payout is reserved in the ledger. A request that fails in
between gives both back itself; a gateway that dies there, or a request cancelled there,
cannot, and the tenant's limit would stay taken for the day. So the admission script lists
every admitted transfer under the second it was admitted (`TransferAdmission.admitted_key`),
and the worker's reconciler passes here:

- once a second is older than `KOVRA_RECONCILE_AFTER_SECONDS`, no request can still be on
  its way from that admission to the ledger (the ledger call is bounded by
  `KOVRA_LEDGER_TIMEOUT_MS`, which production keeps below the delay);
- every transfer of that second is looked up in the ledger, in requests of up to 8,189,
  by its payout's target leg: every payout has exactly one (a same-currency payout has no
  source leg), and the legs are linked, so that one tells whether the chain exists;
- for each one the ledger does not hold, one script gives back the count and the quote,
  but only if the transfer was not admitted again since (a keyed retry rewrites its memory
  and gets an entry in a later second of its own) and the quote is still this transfer's
  (a request that gave them back already leaves nothing to give).

Reservations the ledger does hold belong to the reservation reconciler (`gateway.jobs.reconciler`).
Every step may run twice (two workers, or a pass cut short): the script gives back once.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from dataclasses import dataclass
from typing import Final, Literal

import structlog
from redis.asyncio import Redis

from compliance.limits import DailyLimits
from fx.quotes import consumer_token
from gateway.transfers.admission import TransferAdmission
from ledger.clients import LedgerClient, batch_size_max
from ledger.invariants import ensure
from ledger.transfers import Leg, transfer_id

# A pass reads at most this many seconds of admissions (ten minutes), so a worker that was
# down for long catches up over several passes instead of in one.
seconds_per_pass_max: Final = 600
log = structlog.get_logger("kovra.reconciler")

# KEYS: the transfer's quote memory (`TransferAdmission.quote_of_key`), the quote's record,
# the day and hour counters of the count's moment. ARGV: the memory as read, the transfer
# (consumer token), the count-once marker's field, the marker as read or ''.
# Returns 1 if it gave back, 0 if the admission was taken up again or given back already.
_release_lua: Final = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[2], 'used_by') ~= ARGV[2] then return 0 end
if ARGV[4] ~= '' and redis.call('HGET', KEYS[2], ARGV[3]) == ARGV[4] then
  redis.call('HDEL', KEYS[2], ARGV[3])
  local amount = string.match(ARGV[4], '^(%d+):')
  if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('DECRBY', KEYS[3], tonumber(amount)) end
  if redis.call('EXISTS', KEYS[4]) == 1 then redis.call('DECR', KEYS[4]) end
end
redis.call('HDEL', KEYS[2], 'used_by')
redis.call('DEL', KEYS[1])
return 1
"""


@dataclass(frozen=True, kw_only=True)
class OrphanAdmissions:
    """What giving orphan admissions back needs, and nothing else."""

    redis: Redis
    ledger_client: LedgerClient
    admission: TransferAdmission
    limits: DailyLimits
    reconcile_after_seconds: int


async def release_orphan_admissions(
    orphans: OrphanAdmissions, *, now_seconds: float | None = None
) -> int:
    """One pass over the seconds of admissions now behind the delay; how many admissions
    without a payout in the ledger it gave back."""
    redis = orphans.redis
    clock = time.time() if now_seconds is None else now_seconds
    cutoff = int(clock) - orphans.reconcile_after_seconds - 1
    oldest = cutoff - orphans.admission.remember_seconds
    stored = await redis.get(orphans.admission.admitted_watermark_key)
    first = oldest if stored is None else max(int(stored) + 1, oldest)
    last = min(cutoff, first + seconds_per_pass_max - 1)
    if last < first:
        return 0
    seconds = range(first, last + 1)
    keys = [orphans.admission.admitted_key(second) for second in seconds]
    listed = await asyncio.gather(*(redis.lrange(key, 0, -1) for key in keys))
    admitted = sorted({_entry(value) for entries in listed for value in entries})
    released = 0
    admitted_before_ms = (cutoff + 1) * 1000
    for start in range(0, len(admitted), batch_size_max):
        chunk = admitted[start : start + batch_size_max]
        released += await _release_unreserved(orphans, chunk, admitted_before_ms=admitted_before_ms)
    found = [key for key, entries in zip(keys, listed, strict=True) if entries]
    if found:
        await redis.delete(*found)
    await redis.set(orphans.admission.admitted_watermark_key, last)
    if released:
        log.warning("orphan_admissions_released", count=released)
    return released


def _entry(value: bytes | str) -> tuple[int, int]:
    """An admissions list's `tenant:transfer` entry as (tenant id, transfer id)."""
    text = value.decode() if isinstance(value, bytes) else value
    tenant, separator, transfer = text.partition(":")
    ensure(
        separator == ":" and tenant.isdigit(),
        f"an admission entry reads tenant:transfer, not {text!r}",
    )
    return int(tenant), int(transfer, 16)


async def _release_unreserved(
    orphans: OrphanAdmissions,
    admitted: list[tuple[int, int]],
    *,
    admitted_before_ms: int,
) -> int:
    """Give back the admissions of `admitted` whose payout the ledger does not hold, unless
    admitted again at or after `admitted_before_ms`."""
    legs = {
        transfer_id(object_id=transfer, leg=Leg.PAYOUT_TARGET): (tenant, transfer)
        for tenant, transfer in admitted
    }
    held = {leg.id for leg in await orphans.ledger_client.lookup_transfers(list(legs))}
    unreserved = [entry for leg, entry in legs.items() if leg not in held]
    outcomes = await asyncio.gather(
        *(
            give_back_admission(
                orphans,
                tenant_id=tenant,
                transfer=transfer,
                admitted_before_ms=admitted_before_ms,
            )
            for tenant, transfer in unreserved
        )
    )
    return sum(1 for outcome in outcomes if outcome == "given_back")


GiveBack = Literal["given_back", "forgotten", "admitted_again", "not_its"]


async def give_back_admission(
    orphans: OrphanAdmissions,
    *,
    tenant_id: int,
    transfer: int,
    admitted_before_ms: int | None = None,
) -> GiveBack:
    """Give back what the transfer's admission took, its daily-limit count and its quote,
    in one script and only while they are still its own; once, however often it is called.
    With `admitted_before_ms`, not if the transfer was admitted again at or after it (a
    keyed retry, which decides for itself). `forgotten`: Redis no longer remembers the
    admission's quote, so nothing can be given back."""
    memory_key = orphans.admission.quote_of_key(transfer)
    memory = _text(await orphans.redis.get(memory_key))
    if memory is None:
        return "forgotten"
    quote_hex, _, admitted_ms = memory.partition(":")
    if admitted_before_ms is not None and admitted_ms and int(admitted_ms) >= admitted_before_ms:
        return "admitted_again"
    marker = orphans.admission.marker(tenant_id=tenant_id, quote_id=int(quote_hex, 16))
    counted = _text(await orphans.redis.hget(marker.key, marker.field))
    keys = [
        memory_key,
        marker.key,
        *orphans.limits.counter_keys(tenant_id=tenant_id, moment=_moment_of(counted)),
    ]
    args = [memory, consumer_token(transfer), marker.field, counted or ""]
    release = orphans.redis.register_script(_release_lua)
    return "given_back" if int(await release(keys=keys, args=args)) else "not_its"


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _moment_of(counted: str | None) -> datetime.datetime:
    """When a count-once marker (`amount:ms`) counted; now if there is none to give back."""
    if counted is None:
        return datetime.datetime.now(tz=datetime.UTC)
    _, _, moment_ms = counted.partition(":")
    ensure(moment_ms.isdigit(), f"a count-once marker reads amount:ms, not {counted!r}")
    return datetime.datetime.fromtimestamp(int(moment_ms) / 1000, tz=datetime.UTC)
