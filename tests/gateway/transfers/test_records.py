"""A transfer the worker claims is leased for the lease it is given
(`KOVRA_TRANSFER_LEASE_SECONDS`), to the second as Postgres counts it: another claim skips
it meanwhile, and once the lease has run out (its worker died) the next claim takes it up.
The claim makes a transfer to send `submitted` with its next attempt number in the same
write (each claim is one more attempt), and leaves a cancelled one as it is."""

from __future__ import annotations

import datetime
import uuid

import asyncpg

from gateway.transfers.records import claim_for_submission

lease_seconds = 7


async def _processing_transfer(pool: asyncpg.Pool, status: str = "processing") -> uuid.UUID:
    transfer_id = uuid.uuid4()
    await pool.execute(
        """INSERT INTO transfers (id, compliance_region, tenant_id, quote_id, recipient_id,
                                  reference, source_currency, source_amount_minor, fee_minor,
                                  target_currency, target_amount_minor, rate, rail, status)
           VALUES ($1, 'EU', 1, $2, $3, 'INV-1', 'EUR', 1000, 10, 'EUR', 1000, '1',
                   'sepa_instant', $4)""",
        transfer_id,
        uuid.uuid4(),
        uuid.uuid4(),
        status,
    )
    return transfer_id


async def test_a_claimed_transfer_is_held_for_its_lease_then_taken_up(pool: asyncpg.Pool) -> None:
    transfer_id = await _processing_transfer(pool)
    before: datetime.datetime = await pool.fetchval("SELECT now()")
    (claimed,) = await claim_for_submission(pool, limit=10, lease_seconds=lease_seconds)
    after: datetime.datetime = await pool.fetchval("SELECT now()")
    lease = datetime.timedelta(seconds=lease_seconds)
    assert claimed.id == transfer_id
    assert (claimed.status, claimed.attempt) == ("submitted", 1)
    assert before + lease <= claimed.next_attempt_at <= after + lease
    assert await claim_for_submission(pool, limit=10, lease_seconds=lease_seconds) == []
    # The lease runs out, as time would make it (its end moved to now): the transfer is due.
    await pool.execute("UPDATE transfers SET next_attempt_at = now() WHERE id = $1", transfer_id)
    (again,) = await claim_for_submission(pool, limit=10, lease_seconds=lease_seconds)
    assert (again.id, again.status, again.attempt) == (transfer_id, "submitted", 2)


async def test_a_cancelled_transfer_is_leased_as_it_is(pool: asyncpg.Pool) -> None:
    transfer_id = await _processing_transfer(pool, status="cancelled")
    (claimed,) = await claim_for_submission(pool, limit=10, lease_seconds=lease_seconds)
    assert (claimed.id, claimed.status, claimed.attempt) == (transfer_id, "cancelled", 0)
