"""Recipients and compliance for a whole batch, without a round trip per item.

Recipients come from the Redis cache the transfer path reads (one MGET), and those not
cached from Postgres in one `= ANY($1)` query. Daily limits count every item in one Redis
script, in order (`DailyLimits.consume_many`). Compliance decides each item, but a batch
paying one supplier a thousand times asks about that supplier once per amount band: the
decisions are shared the way `compliance.checks.CachedCheck` shares them, within the batch.
"""

from __future__ import annotations

import uuid

import asyncpg
import msgspec
from redis.asyncio import Redis

from compliance.checks import amount_band_usd_minor
from compliance.decisions import ComplianceCheck, Decision, PayoutFacts
from gateway.transfers.recipients import (
    RecipientRecord,
    recipient_cache_key,
    recipient_cache_seconds,
    recipient_from_row,
)


async def fetch_recipients(
    pool: asyncpg.Pool,
    redis: Redis,
    *,
    tenant_id: int,
    region: str,
    recipient_ids: set[int],
) -> dict[int, RecipientRecord]:
    """The tenant's recipients among `recipient_ids` (unknown ones are simply absent)."""
    ids = sorted(recipient_ids)
    if not ids:
        return {}
    cached = await redis.mget([recipient_cache_key(tenant_id, i) for i in ids])
    found: dict[int, RecipientRecord] = {}
    missing: list[int] = []
    for recipient_id, value in zip(ids, cached, strict=True):
        if value is None:
            missing.append(recipient_id)
        else:
            found[recipient_id] = msgspec.json.decode(value, type=RecipientRecord)
    if missing:
        rows = await pool.fetch(
            """SELECT id, tenant_id, name, country, currency, status, bank_details, created_at
                 FROM recipients
                WHERE compliance_region = $1 AND tenant_id = $2 AND id = ANY($3::uuid[])""",
            region,
            tenant_id,
            [uuid.UUID(int=i) for i in missing],
        )
        async with redis.pipeline(transaction=False) as pipeline:
            for row in rows:
                record = recipient_from_row(row)
                found[record.id] = record
                pipeline.set(
                    recipient_cache_key(tenant_id, record.id),
                    msgspec.json.encode(record),
                    ex=recipient_cache_seconds,
                )
            await pipeline.execute()
    return found


class BatchScreening:
    """One compliance decision per (recipient, amount band) within one batch."""

    def __init__(self, check: ComplianceCheck) -> None:
        self._check = check
        self._decisions: dict[tuple[int, int], Decision] = {}

    @property
    def checks_made(self) -> int:
        return len(self._decisions)

    async def decide(self, *, recipient_id: int, facts: PayoutFacts) -> Decision:
        key = (recipient_id, facts.amount_usd_minor // amount_band_usd_minor)
        decision = self._decisions.get(key)
        if decision is None:
            decision = self._decisions[key] = await self._check.check(facts)
        return decision


def payout_facts(
    *,
    tenant_id: int,
    tier: str,
    source_currency: str,
    target_currency: str,
    amount_usd_minor: int,
    daily_limit_usd_minor: int,
    recipient: RecipientRecord,
    payouts_last_hour: int,
) -> PayoutFacts:
    return PayoutFacts(
        tenant_id=tenant_id,
        tier=tier,
        source_currency=source_currency,
        target_currency=target_currency,
        amount_usd_minor=amount_usd_minor,
        daily_limit_usd_minor=daily_limit_usd_minor,
        recipient_name=recipient.name,
        recipient_country=recipient.country,
        recipient_created_at=recipient.created_at,
        payouts_last_hour=payouts_last_hour,
    )
