"""The audit trail (SPEC §8) is one unbroken, gap-free hash chain, even with appenders in
several OS processes; its hashes follow the documented definition; the database refuses
UPDATE, DELETE and TRUNCATE; bad input is refused unwritten."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import itertools
import json
import multiprocessing
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from multiprocessing.synchronize import Barrier

import asyncpg
import pytest

from compliance.audit import chain as audit
from compliance.audit.chain import AuditInputError, AuditRecord
from compliance.audit.verify import verify
from gateway.infra.database.migrate import migrate

processes = 4
appenders_per_process = 5
records_per_appender = 3
process_timeout_seconds = 60
utc = datetime.UTC


async def append_many(pool: asyncpg.Pool, count: int) -> list[AuditRecord]:
    return [
        await audit.append(
            pool, actor="admin:alice", action="tenant.status", target=f"tenant:{n}", details={}
        )
        for n in range(1, count + 1)
    ]


async def test_a_chain_of_records_verifies(pool: asyncpg.Pool) -> None:
    moment = datetime.datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=utc)
    details: dict[str, object] = {
        "amount": Decimal("1.10"),
        "at": moment,
        "id": uuid.UUID(int=7),
        "score": 1e16,
        "big": 2**70,
        "name": 'Zürich € 𝄞 "quoted" \\ \n',
        "nested": {"list": [1, True, None, (2, 3)], "z": {}, "a": -0.0},
    }
    first = await audit.append(
        pool, actor="cli:ops", action="tenant.create", target="t:1", details=details
    )
    rest = await append_many(pool, 4)
    chain = [first, *rest]

    assert [record.seq for record in chain] == [1, 2, 3, 4, 5]
    assert first.previous_hash == bytes(32)
    assert all(
        later.previous_hash == earlier.record_hash for earlier, later in itertools.pairwise(chain)
    )
    assert first.details["amount"] == "1.10"
    assert first.details["at"] == "2025-01-02T03:04:05.000006+00:00"
    assert first.details["nested"] == {"list": [1, True, None, [2, 3]], "z": {}, "a": "-0.0"}
    stored = await pool.fetchval("SELECT details::text FROM audit_records WHERE seq = 1")
    assert json.loads(stored) == first.details
    result = await verify(pool)
    assert result.ok, result
    assert (result.records_checked, result.last_seq) == (5, 5)
    assert result.head_hash == chain[-1].record_hash.hex()
    assert result.broken_seq is None
    assert result.reason is None


async def test_the_hashes_follow_the_documented_definition(pool: asyncpg.Pool) -> None:
    empty = await verify(pool)
    assert empty.ok
    assert (empty.records_checked, empty.head_hash) == (0, "00" * 32)

    record = await audit.append(pool, actor="a", action="b", target="c", details={"y": 1, "x": "é"})
    stamp = record.recorded_at.astimezone(utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    payload = (
        '{"action":"b","actor":"a","details":{"x":"é","y":1},'
        f'"recorded_at":"{stamp}","target":"c"}}'
    ).encode()
    assert (
        audit.canonical_payload(
            actor="a",
            action="b",
            target="c",
            details={"y": 1, "x": "é"},
            recorded_at=record.recorded_at,
        )
        == payload
    )
    assert record.payload_hash == hashlib.sha256(payload).digest()
    material = bytes(32) + record.payload_hash + (1).to_bytes(8, "big") + stamp.encode()
    assert record.record_hash == hashlib.sha256(material).digest()


def append_in_process(database_url: str, process_index: int, barrier: Barrier) -> None:
    """One OS process: its appenders start together with every other process's."""
    barrier.wait(timeout=process_timeout_seconds)
    asyncio.run(append_concurrently(database_url, process_index))


async def append_concurrently(database_url: str, process_index: int) -> None:
    async def appender(index: int) -> None:
        connection = await asyncpg.connect(database_url)
        try:
            for n in range(records_per_appender):
                await audit.append(
                    connection,
                    actor=f"process:{process_index}",
                    action="test.append",
                    target=f"appender:{index}",
                    details={"n": n},
                )
        finally:
            await connection.close()

    await asyncio.gather(*(appender(index) for index in range(appenders_per_process)))


async def test_concurrent_appenders_in_several_processes_form_one_chain(
    empty_database: str,
) -> None:
    await migrate(empty_database)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    workers = [
        context.Process(target=append_in_process, args=(empty_database, index, barrier))
        for index in range(processes)
    ]
    for worker in workers:
        worker.start()
    try:
        for worker in workers:
            await asyncio.to_thread(worker.join, process_timeout_seconds)
        assert [worker.exitcode for worker in workers] == [0] * processes
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()

    total = processes * appenders_per_process * records_per_appender
    connection = await asyncpg.connect(empty_database)
    try:
        rows = await connection.fetch("SELECT seq, actor, target FROM audit_records ORDER BY seq")
        result = await verify(connection)
    finally:
        await connection.close()
    assert [row["seq"] for row in rows] == list(range(1, total + 1))
    writers = {(row["actor"], row["target"]) for row in rows}
    assert len(writers) == processes * appenders_per_process
    assert result.ok, result
    assert result.records_checked == total


@pytest.mark.parametrize(
    ("statement", "operation"),
    [
        ("UPDATE audit_records SET actor = 'mallory'", "UPDATE"),
        ("DELETE FROM audit_records WHERE seq = 2", "DELETE"),
        ("TRUNCATE audit_records", "TRUNCATE"),
    ],
)
async def test_the_database_refuses_to_rewrite_history(
    pool: asyncpg.Pool, statement: str, operation: str
) -> None:
    await append_many(pool, 3)
    with pytest.raises(asyncpg.RaiseError, match=f"append-only: {operation} is refused"):
        await pool.execute(statement)
    assert await pool.fetchval("SELECT count(*) FROM audit_records") == 3
    assert (await verify(pool)).ok


class NotJson:
    pass


def nested(depth: int) -> dict[str, object]:
    value: dict[str, object] = {}
    for _ in range(depth):
        value = {"x": value}
    return value


refused_inputs: list[tuple[str, dict[str, object]]] = [
    ("actor", {"actor": "a" * (audit.actor_length_max + 1)}),
    ("actor", {"actor": ""}),
    ("actor", {"actor": "nul\x00byte"}),
    ("action", {"action": "b" * (audit.action_length_max + 1)}),
    ("target", {"target": "c" * (audit.target_length_max + 1)}),
    ("not JSON data", {"details": {"object": NotJson()}}),
    ("not JSON data", {"details": {"set": {1, 2}}}),
    ("keys must be strings", {"details": {1: "one"}}),
    ("NUL", {"details": {"text": "\x00"}}),
    ("not valid Unicode", {"details": {"text": "\ud800"}}),
    ("exceed", {"details": {"blob": "x" * audit.details_bytes_max}}),
    ("nest deeper", {"details": nested(audit.details_depth_max + 1)}),
    ("JSON object", {"details": ["not", "an", "object"]}),
]


async def test_bad_input_is_refused_before_anything_is_written(
    pool: asyncpg.Pool,
) -> None:
    valid: dict[str, object] = {"actor": "cli:ops", "action": "x", "target": "y", "details": {}}
    append: Callable[..., Awaitable[AuditRecord]] = audit.append
    for message, override in refused_inputs:
        with pytest.raises(AuditInputError, match=message):
            await append(pool, **{**valid, **override})
    assert await pool.fetchval("SELECT count(*) FROM audit_records") == 0

    at_the_limits = await audit.append(
        pool,
        actor="a" * audit.actor_length_max,
        action="b" * audit.action_length_max,
        target="c" * audit.target_length_max,
        details=nested(audit.details_depth_max),
    )
    assert at_the_limits.seq == 1
    assert (await verify(pool)).ok
