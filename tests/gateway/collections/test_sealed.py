"""What the collections domain seals at rest, on real Postgres, Redis, the embedded ledger and
the sandbox providers: after a SEPA collection is run, neither the mandates nor the runs
hold the debtor's IBAN or name in the clear, and the run's messages still answer the
pain.008; a sealed message moved onto another run does not open; a message stored before
runs were sealed is answered as it is; reseal after a key rotation moves every mandate and
run (those stored in plain text too) under the new key, a bounded batch at a time, and they
open once the old key is gone; reseal without the old key stops and a rerun resumes. The
largest run any scheme builds fits a sealed document, and a mandate for a long name in a
non-Latin script seals."""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass

import asyncpg
import pytest
from redis.asyncio import Redis

from gateway.collections import sealed, wire
from gateway.collections.sealed import (
    open_mandate_details,
    open_run_message,
    reseal_mandates,
    reseal_runs,
    seal_mandate_details,
)
from gateway.collections.service import Collections
from gateway.collections.worker import CollectionsWorker, claim_batch_size_max
from gateway.http.ids import encode_id
from gateway.http.ratelimit import Principal
from gateway.infra.sealing import SecretBox, SecretUnreadable, document_bytes_max
from ledger.transfers import new_object_id
from rails.collections.bacs_dd import BacsDirectDebit
from rails.collections.paywithaccount import PayWithAccount
from rails.collections.provider import CollectionRequest, provider_batch_size_max
from rails.collections.scheme import Scheme
from rails.collections.sepa_dd import SepaCreditor, SepaDirectDebit
from tests.gateway.collections.fixtures import Customers, Domain, iban, make_domain

old_key = "collections-key-before-the-rotation-" + "a" * 32
new_key = "collections-key-after-the-rotation-" + "b" * 32
debtor = "Erika Mustermann"


@dataclass
class Sealing:
    domain: Domain
    redis: Redis
    customers: Customers
    principal: Principal
    customer_id: int

    def service(self, box: SecretBox) -> Collections:
        return Collections(
            pool=self.domain.pool,
            redis=self.redis,
            secret_box=box,
            currencies=self.domain.world.ledger.currencies,
            providers=self.domain.providers,
            customers=self.customers,
            applier=self.domain.applier,
            lookup_after_seconds=0,
        )

    def worker(self, box: SecretBox) -> CollectionsWorker:
        return CollectionsWorker(
            pool=self.domain.pool,
            providers=self.domain.providers,
            secret_box=box,
            applier=self.domain.applier,
        )


@pytest.fixture
async def sealing(pool: asyncpg.Pool, redis_client: Redis, namespace: str) -> Sealing:
    domain = await make_domain(pool, redis_client, namespace)
    customers = Customers()
    customer_id = new_object_id()
    customers.known[domain.world.tenant_id, customer_id] = Customers.Record(name=debtor)
    principal = Principal(
        tenant_id=domain.world.tenant_id,
        role="admin",
        key_id=1,
        compliance_region="EU",
        status="active",
    )
    return Sealing(
        domain=domain,
        redis=redis_client,
        customers=customers,
        principal=principal,
        customer_id=customer_id,
    )


async def _collected(sealing: Sealing, box: SecretBox, *, runs: int) -> list[int]:
    """A SEPA mandate made through the service and activated at the sandbox, and `runs`
    collections under it, each run by the worker in a run of its own; their ids."""
    service, worker = sealing.service(box), sealing.worker(box)
    mandate_id = new_object_id()
    body = wire.MandateCreate(
        customer_id=encode_id("cus", sealing.customer_id),
        provider="sepa_dd",
        currency="EUR",
        bank_details={"iban": iban, "bic": "COBADEFFXXX"},
        reference="gym 7",
        consent=wire.Consent(
            accepted_at=datetime.datetime.now(tz=datetime.UTC),
            ip="203.0.113.7",
            user_agent="tests",
        ),
    )
    await service.create_mandate(sealing.principal, mandate_id=mandate_id, body=body)
    assert await worker.submit_mandates() == 1
    await sealing.domain.pool.execute(
        "UPDATE mandates SET status = 'active' WHERE id = $1", uuid.UUID(int=mandate_id)
    )
    collection_ids = []
    for number in range(runs):
        collection_id = new_object_id()
        await service.collect(
            sealing.principal,
            mandate_id=mandate_id,
            collection_id=collection_id,
            body=wire.CollectionCreate(amount=100 + number, reference=f"invoice {number}"),
        )
        assert await worker.run_collections() == 1
        collection_ids.append(collection_id)
    return collection_ids


async def _dump(pool: asyncpg.Pool, table: str) -> str:
    rows = await pool.fetch(f"SELECT * FROM {table}")
    assert rows
    return "\n".join(str(dict(row)) for row in rows)


async def test_a_sepa_collection_leaves_no_iban_or_name_in_the_clear(sealing: Sealing) -> None:
    box = SecretBox(new_key)
    (collection_id,) = await _collected(sealing, box, runs=1)
    for table in ("mandates", "collection_runs", "collections"):
        dumped = await _dump(sealing.domain.pool, table)
        assert iban not in dumped
        assert "Mustermann" not in dumped
    (message,) = (await sealing.service(box).messages(sealing.principal, collection_id)).data
    assert message.type == "pain.008"
    assert message.xml.startswith("<?xml")
    assert f"<IBAN>{iban}</IBAN>" in message.xml
    assert f"<Nm>{debtor}</Nm>" in message.xml


async def test_a_sealed_message_moved_to_another_run_does_not_open(sealing: Sealing) -> None:
    box = SecretBox(new_key)
    first, second = await _collected(sealing, box, runs=2)
    pool = sealing.domain.pool
    runs = await pool.fetch("SELECT id, message FROM collection_runs ORDER BY created_at")
    assert len(runs) == 2
    await pool.execute(
        "UPDATE collection_runs SET message = $2 WHERE id = $1", runs[1]["id"], runs[0]["message"]
    )
    service = sealing.service(box)
    assert len((await service.messages(sealing.principal, first)).data) == 1
    with pytest.raises(SecretUnreadable, match="another row"):
        await service.messages(sealing.principal, second)


async def test_a_message_stored_before_sealing_is_answered_as_it_is(sealing: Sealing) -> None:
    box = SecretBox(new_key)
    (collection_id,) = await _collected(sealing, box, runs=1)
    plain = "<?xml version='1.0' encoding='UTF-8'?><Document>before sealing</Document>"
    await sealing.domain.pool.execute("UPDATE collection_runs SET message = $1", plain)
    (message,) = (await sealing.service(box).messages(sealing.principal, collection_id)).data
    assert message.xml == plain


async def test_reseal_moves_mandates_and_runs_under_the_new_key(
    sealing: Sealing, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = SecretBox(old_key)
    collection_ids = await _collected(sealing, old, runs=3)
    for _ in range(2):
        collection_ids += await _collected(sealing, old, runs=1)
    pool = sealing.domain.pool
    plain = "<?xml version='1.0' encoding='UTF-8'?><Document>before sealing</Document>"
    await pool.execute(
        """UPDATE collection_runs SET message = $1
            WHERE id = (SELECT id FROM collection_runs ORDER BY id LIMIT 1)""",
        plain,
    )
    expected = {
        collection_id: (await sealing.service(old).messages(sealing.principal, collection_id)).data
        for collection_id in collection_ids
    }
    # Batches of two walk three mandates and five runs in several transactions.
    monkeypatch.setattr(sealed, "mandate_reseal_batch_size", 2)
    monkeypatch.setattr(sealed, "run_reseal_batch_size", 2)
    rotated = SecretBox(new_key, previous=[old_key])
    assert (await reseal_mandates(pool, rotated), await reseal_runs(pool, rotated)) == (3, 5)
    assert (await reseal_mandates(pool, rotated), await reseal_runs(pool, rotated)) == (0, 0)

    only_new = SecretBox(new_key)
    mandates = await pool.fetch("SELECT id, bank_details_sealed FROM mandates")
    for row in mandates:
        assert only_new.is_current(row["bank_details_sealed"])
        opened = open_mandate_details(only_new, row["bank_details_sealed"], mandate_id=row["id"])
        assert opened == ({"iban": iban, "bic": "COBADEFFXXX"}, debtor)
    runs = await pool.fetch("SELECT message FROM collection_runs")
    assert all(only_new.is_current(run["message"]) for run in runs)
    service = sealing.service(only_new)
    for collection_id, answer in expected.items():
        assert (await service.messages(sealing.principal, collection_id)).data == answer


async def test_reseal_without_the_old_key_stops_and_a_rerun_resumes(sealing: Sealing) -> None:
    await _collected(sealing, SecretBox(old_key), runs=1)
    pool = sealing.domain.pool
    before = await pool.fetchval("SELECT message FROM collection_runs")
    with pytest.raises(SecretUnreadable, match="KOVRA_SECRETS_KEYS_PREVIOUS"):
        await reseal_runs(pool, SecretBox(new_key))
    with pytest.raises(SecretUnreadable, match="KOVRA_SECRETS_KEYS_PREVIOUS"):
        await reseal_mandates(pool, SecretBox(new_key))
    assert await pool.fetchval("SELECT message FROM collection_runs") == before
    rotated = SecretBox(new_key, previous=[old_key])
    assert (await reseal_mandates(pool, rotated), await reseal_runs(pool, rotated)) == (1, 1)


def _largest_requests(
    bank_details: dict[str, str], *, name: str, reference: str
) -> list[CollectionRequest]:
    """A run of the most collections a run carries, every field at its limit, each on its
    own collection date and sequence type where a scheme groups by them."""
    now = datetime.datetime.now(tz=datetime.UTC)
    return [
        CollectionRequest(
            collection_id=2**128 - 1 - number,
            mandate_id=2**128 - 1 - number,
            mandate_provider_reference="M" * 64,
            mandate_signed_at=now,
            currency="EUR",
            amount_minor=99_999_999_999,
            reference=reference,
            end_to_end_id="E" * 35,
            sequence_type="first" if number % 2 else "recurring",
            bank_details=bank_details,
            account_holder_name=name,
            collection_date=(now + datetime.timedelta(days=number)).date(),
        )
        for number in range(provider_batch_size_max)
    ]


def test_the_largest_run_of_every_scheme_fits_a_sealed_document() -> None:
    # A run is one provider call: at most `provider_batch_size_max` collections, and the
    # worker never claims more than that in a pass.
    assert claim_batch_size_max <= provider_batch_size_max
    creditor = SepaCreditor(
        name="C" * 70, identifier="DE98ZZZ09999999999", iban=iban, bic="COBADEFFXXX"
    )
    wide = "\U0001f600" * 200  # 4 bytes of UTF-8 each.
    runs: list[tuple[Scheme, dict[str, str]]] = [
        (SepaDirectDebit(creditor), {"iban": "MT84MALT011000012345MTLCAST001S", "bic": "A" * 11}),
        (BacsDirectDebit(), {"sort_code": "9" * 64, "account_number": "9" * 64}),
        (PayWithAccount(), {"bank_code": "9" * 64, "account_number": "9" * 64}),
    ]
    box = SecretBox(new_key)
    run_id = uuid.uuid4()
    for scheme, bank_details in runs:
        requests = _largest_requests(bank_details, name=wide, reference=wide[:140])
        message = scheme.collection_message(
            requests, created_at=datetime.datetime.now(datetime.UTC)
        )
        assert message is not None
        assert len(message) <= document_bytes_max // 2, scheme.name
        stored = sealed.seal_run_message(box, message, run_id=run_id)
        assert open_run_message(box, stored, run_id=run_id) == message.decode()


def test_a_mandate_for_a_long_non_latin_name_seals() -> None:
    box = SecretBox(new_key)
    mandate_id = uuid.uuid4()
    name = "Ж" * 200  # Escaped in JSON as 6 bytes each: more than a secret's 1 KiB.
    details = {f"{number}" + "k" * 31: "ß" * 64 for number in range(4)}
    stored = seal_mandate_details(box, details, name, mandate_id=mandate_id)
    assert open_mandate_details(box, stored, mandate_id=mandate_id) == (details, name)
