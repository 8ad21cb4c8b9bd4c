"""Repair of a batch whose ledger writes were never recorded (the gateway died between the
ledger and Postgres): the repair finds it from the ledger alone, tombstones it so a late
request cannot record it, voids its items' holds and reverses its pair chain, leaving every
balance as it was, and gives its items' count back to the daily limit (real Redis); a
recorded batch is never touched, and a second pass changes nothing."""

from __future__ import annotations

import asyncio
import datetime
import uuid
from dataclasses import dataclass
from typing import cast

import asyncpg
import msgspec
from redis.asyncio import Redis

from compliance.limits import DailyLimits
from gateway.batches.records import BatchRecord, record_batch
from gateway.batches.repair import repair_once
from gateway.batches.service import item_id
from gateway.jobs.worker import batch_repair
from gateway.runtime import Runtime
from ledger.accounts import AccountType, platform_account_id
from ledger.clients import EmbeddedClient, LedgerClient
from ledger.netting import NettedItem, NettedPair, Netting
from ledger.service import Ledger
from ledger.transfers import linked, new_object_id
from tests.gateway.batches.test_records import _record
from tests.ledger.fixtures import World, make_world


@dataclass
class _Settings:
    reconcile_after_seconds: int = 1


@dataclass
class _Services:
    """What the repair uses of `Runtime`: real Postgres, Redis's daily limits and a real
    (embedded) ledger."""

    pool: asyncpg.Pool
    ledger_client: LedgerClient
    ledger: Ledger
    settings: _Settings
    limits: DailyLimits


async def _tenant(pool: asyncpg.Pool, tenant_id: int) -> None:
    await pool.execute(
        """INSERT INTO tenants (id, name, compliance_region, pricing_policy_id, limit_policy_id)
           VALUES ($1, 'repair', 'EU', 1, 1)""",
        tenant_id,
    )


async def _accept_in_ledger_only(world: World, batch_id: int, items: int) -> None:
    netting = Netting(world.ledger)
    shares = [
        NettedItem(
            item_id=item_id(batch_id=batch_id, index=index),
            tenant_id=world.tenant_id,
            source_currency="EUR",
            source_amount_minor=1_000 + index,
            fee_minor=10,
            target_currency="IDR",
            target_amount_minor=1_700_000 + index,
        )
        for index in range(items)
    ]
    pair = NettedPair(
        batch_id=batch_id,
        tenant_id=world.tenant_id,
        source_currency="EUR",
        target_currency="IDR",
        source_amount_minor=sum(s.source_amount_minor for s in shares),
        fee_minor=sum(s.fee_minor for s in shares),
        target_amount_minor=sum(s.target_amount_minor for s in shares),
    )
    await netting.open_clearing_accounts(world.tenant_id, {"EUR"})
    assert await netting.submit_chains([linked(netting.pair_chain(pair))]) == [None]
    holds = [netting.item_reservation(share) for share in shares]
    assert await netting.submit_chains(holds) == [None] * items


async def _liquidity(world: World) -> int:
    (account,) = await world.ledger.client.lookup_accounts(
        [platform_account_id(AccountType.FX_POSITION, 360)]
    )
    return int(account.credits_posted - account.debits_posted)


async def test_an_unrecorded_batch_is_undone_and_stays_undone(
    pool: asyncpg.Pool, redis_client: Redis, namespace: str
) -> None:
    world = await make_world(EmbeddedClient(), {"EUR": 1_000_000})
    await world.ledger.fund_liquidity(
        funding_id=new_object_id(), currency_code="IDR", amount_minor=10**12
    )
    await _tenant(pool, world.tenant_id)
    limits = DailyLimits(redis_client, namespace=namespace)
    services = cast(
        Runtime, _Services(pool, world.ledger.client, world.ledger, _Settings(), limits)
    )
    orphan, recorded = new_object_id(), new_object_id()
    liquidity = await _liquidity(world)
    for batch_id, items in ((orphan, 3), (recorded, 2)):
        await _accept_in_ledger_only(world, batch_id, items=items)
        await limits.consume_many(
            tenant_id=world.tenant_id,
            usd_minor=dict.fromkeys(range(items), 100),
            daily_limit_usd_minor=10_000,
            once=limits.batch_marker(tenant_id=world.tenant_id, batch_id=batch_id),
        )
    assert await record_batch(pool, _record_of(world, recorded, items=2)) == "created"
    await asyncio.sleep(1.1)  # Older than the reconcile delay.
    assert await repair_once(batch_repair(services)) == 1
    assert await repair_once(batch_repair(services)) == 0
    wallet = await world.balance("EUR")
    recorded_cost = (1_000 + 10) + (1_001 + 10)
    assert (wallet.posted, wallet.pending) == (1_000_000 - recorded_cost, 0)
    assert await _liquidity(world) == liquidity - (1_700_000 + 1_700_001)
    status = await pool.fetchval("SELECT status FROM batches WHERE id = $1", uuid.UUID(int=orphan))
    assert status == "abandoned"
    assert await record_batch(pool, _record_of(world, orphan, items=1)) == "abandoned"
    # The orphan's three items went back to the daily limit; the recorded two stay.
    (day_key, _) = limits.counter_keys(
        tenant_id=world.tenant_id, moment=datetime.datetime.now(tz=datetime.UTC)
    )
    assert int(await redis_client.get(day_key) or 0) == 200


def _record_of(world: World, batch_id: int, *, items: int) -> BatchRecord:
    """A batch row for the world's tenant (the transfer rows' tenant does not matter here)."""
    record = _record(uuid.UUID(int=batch_id), items=items)
    batch = msgspec.structs.replace(record.batch, tenant_id=world.tenant_id)
    return msgspec.structs.replace(record, batch=batch)
