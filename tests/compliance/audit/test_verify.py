"""A table owner who gets past the append-only triggers is caught by `verify` at the exact
record: an altered record where its payload no longer matches, a rewrite with recomputed
hashes at the next record, a deleted record as a gap at its seq."""

from __future__ import annotations

import hashlib

import asyncpg

from compliance.audit import chain as audit
from compliance.audit.verify import verify
from tests.compliance.audit.test_chain import append_many


async def as_owner_without(pool: asyncpg.Pool, trigger: str, statement: str) -> None:
    """What only the table's owner can do: disable a guard trigger around one statement."""
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(f"ALTER TABLE audit_records DISABLE TRIGGER {trigger}")
        await connection.execute(statement)
        await connection.execute(f"ALTER TABLE audit_records ENABLE TRIGGER {trigger}")


async def test_an_altered_record_is_reported_at_its_seq(pool: asyncpg.Pool) -> None:
    await append_many(pool, 5)
    await as_owner_without(
        pool,
        "audit_records_no_update",
        """UPDATE audit_records SET details = '{"forged": true}' WHERE seq = 3""",
    )
    result = await verify(pool)
    assert not result.ok
    assert (result.broken_seq, result.reason) == (3, "payload_altered")
    assert (result.records_checked, result.last_seq) == (2, 2)


async def test_a_rewrite_with_recomputed_hashes_breaks_the_chain_at_the_next_seq(
    pool: asyncpg.Pool,
) -> None:
    chain = await append_many(pool, 5)
    victim = chain[2]
    payload = audit.canonical_payload(
        actor=victim.actor,
        action=victim.action,
        target="tenant:999",
        details=victim.details,
        recorded_at=victim.recorded_at,
    )
    payload_hash = hashlib.sha256(payload).digest()
    forged = audit.record_hash(
        previous_hash=victim.previous_hash,
        payload_hash=payload_hash,
        seq=victim.seq,
        recorded_at=victim.recorded_at,
    )
    await as_owner_without(
        pool,
        "audit_records_no_update",
        f"""UPDATE audit_records SET target = 'tenant:999',
                   payload_hash = '\\x{payload_hash.hex()}', record_hash = '\\x{forged.hex()}'
             WHERE seq = 3""",
    )
    result = await verify(pool)
    assert (result.broken_seq, result.reason) == (4, "chain_broken")


async def test_a_deleted_record_is_reported_as_a_gap_at_its_seq(pool: asyncpg.Pool) -> None:
    await append_many(pool, 5)
    await as_owner_without(
        pool, "audit_records_no_delete", "DELETE FROM audit_records WHERE seq = 3"
    )
    result = await verify(pool)
    assert (result.ok, result.broken_seq, result.reason) == (False, 3, "seq_gap")
    assert result.records_checked == 2
