"""Customers' personal data at rest (`gateway.customers.service.Customers` over a real
Postgres): `get` answers a tenant's customer opened and refuses another tenant's; a sealed
value moved onto another row, or into another column of its own row, does not open; after a
key rotation, customers stay readable and findable under the previous key, and reseal moves
every customer under the new key (sealing and blind indexes), after which the old key is no
longer needed; the external id stays unique across a rotation; and the blind index is keyed,
domain-separated per field and never the plaintext."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from gateway.customers import wire
from gateway.customers.errors import CustomerNotFound, ExternalIdTaken
from gateway.customers.service import Customers, reseal_customers
from gateway.http.paging import page_request, positions
from gateway.infra.sealing import BlindIndex, SecretBox, SecretUnreadable
from ledger.transfers import new_object_id

old_key = "the-key-before-the-rotation-" + "a" * 32
new_key = "the-key-after-the-rotation-" + "b" * 32
tenant_id = 41
region = "EU"


def _customers(pool: asyncpg.Pool, current: str, *previous: str) -> Customers:
    return Customers(
        pool=pool,
        box=SecretBox(current, previous=previous),
        index=BlindIndex(current, previous=previous),
    )


def _body(number: int) -> wire.CustomerCreate:
    return wire.CustomerCreate(
        name=f"Customer Number {number}",
        email=f"Person{number}@Example.com",
        country="FR",
        external_id=f"ext-{number}",
    )


async def _reseal(pool: asyncpg.Pool, current: str, *previous: str) -> int:
    box, index = SecretBox(current, previous=previous), BlindIndex(current, previous=previous)
    return await reseal_customers(pool, box, index)


async def _create(customers: Customers, number: int, *, tenant: int = tenant_id) -> int:
    record = await customers.create(
        tenant_id=tenant, region=region, customer_id=new_object_id(), body=_body(number)
    )
    return record.id


async def _found(customers: Customers, **lookup: str) -> list[int]:
    page = await customers.list(
        tenant_id=tenant_id,
        region=region,
        page=page_request(positions, limit=100, cursor=None, limit_max=100),
        **lookup,
    )
    return [record.id for record in page.items]


async def test_get_answers_the_tenants_customer_and_refuses_anothers(pool: asyncpg.Pool) -> None:
    customers = _customers(pool, new_key)
    customer_id = await _create(customers, 1)
    record = await customers.get(tenant_id=tenant_id, customer_id=customer_id)
    assert (record.name, record.email, record.external_id) == (
        "Customer Number 1",
        "Person1@Example.com",
        "ext-1",
    )
    assert (record.tenant_id, record.region, record.country) == (tenant_id, region, "FR")
    with pytest.raises(CustomerNotFound) as refused:
        await customers.get(tenant_id=tenant_id + 1, customer_id=customer_id)
    assert refused.value.code == "not_found"
    with pytest.raises(CustomerNotFound):
        await customers.get(tenant_id=tenant_id, customer_id=new_object_id())


async def test_a_sealed_value_moved_to_another_row_or_column_does_not_open(
    pool: asyncpg.Pool,
) -> None:
    customers = _customers(pool, new_key)
    first, second = await _create(customers, 1), await _create(customers, 2)
    await pool.execute(
        """UPDATE customers SET name_sealed = (SELECT name_sealed FROM customers WHERE id = $1)
            WHERE id = $2""",
        uuid.UUID(int=first),
        uuid.UUID(int=second),
    )
    with pytest.raises(SecretUnreadable, match="another row"):
        await customers.get(tenant_id=tenant_id, customer_id=second)
    await pool.execute(
        "UPDATE customers SET name_sealed = email_sealed WHERE id = $1", uuid.UUID(int=first)
    )
    with pytest.raises(SecretUnreadable, match="another row"):
        await customers.get(tenant_id=tenant_id, customer_id=first)


async def test_reseal_after_a_rotation_moves_every_customer_under_the_new_key(
    pool: asyncpg.Pool,
) -> None:
    before = _customers(pool, old_key)
    made = [await _create(before, number) for number in range(3)]
    rotated = _customers(pool, new_key, old_key)
    # Until reseal, the previous key still opens and finds what it sealed and indexed.
    assert (await rotated.get(tenant_id=tenant_id, customer_id=made[1])).name == (
        "Customer Number 1"
    )
    assert await _found(rotated, email="person1@example.com") == [made[1]]
    assert await _found(rotated, external_id="ext-2") == [made[2]]
    with pytest.raises(ExternalIdTaken):
        await _create(rotated, 0)  # ext-0 is indexed under the old key only.
    assert await _reseal(pool, new_key, old_key) == 3
    assert await _reseal(pool, new_key, old_key) == 0
    only_new = _customers(pool, new_key)
    for number, customer_id in enumerate(made):
        record = await only_new.get(tenant_id=tenant_id, customer_id=customer_id)
        assert (record.name, record.external_id) == (f"Customer Number {number}", f"ext-{number}")
    assert await _found(only_new, email="PERSON2@example.com") == [made[2]]
    assert await _found(only_new, external_id="ext-0") == [made[0]]
    key_ids = {
        row["index_key_id"] for row in await pool.fetch("SELECT index_key_id FROM customers")
    }
    assert key_ids == {BlindIndex(new_key).current_key_id}


async def test_reseal_without_the_old_key_stops_and_a_rerun_resumes(pool: asyncpg.Pool) -> None:
    made = await _create(_customers(pool, old_key), 7)
    stored = await pool.fetchval("SELECT name_sealed FROM customers")
    new_only = _customers(pool, new_key)
    with pytest.raises(SecretUnreadable):
        await _reseal(pool, new_key)
    assert await pool.fetchval("SELECT name_sealed FROM customers") == stored
    assert await _reseal(pool, new_key, old_key) == 1
    assert (await new_only.get(tenant_id=tenant_id, customer_id=made)).email == (
        "Person7@Example.com"
    )


def test_the_blind_index_is_keyed_per_field_and_never_the_value() -> None:
    index = BlindIndex(new_key)
    email = "person@example.com"
    assert index.index("email", email) == index.index("email", email)
    assert index.index("email", email) != index.index("external_id", email)
    assert index.index("email", email) != BlindIndex(old_key).index("email", email)
    assert email.encode() not in index.index("email", email)
    assert len(index.index("email", email)) == 32
    rotated = BlindIndex(new_key, previous=[old_key])
    assert rotated.candidates("email", email) == [
        index.index("email", email),
        BlindIndex(old_key).index("email", email),
    ]
    # The sealing key and the index key are different keys from the same material.
    assert rotated.current_key_id != SecretBox(new_key).current_key_id
