"""Webhook secrets sealed at rest: a sealed value opens only for its own row and under a
configured key (current or previous), and an altered one does not; a value from before
sealing still opens; the sandbox's key file is made once, private, and shared by processes
that start together; production refuses to start without KOVRA_SECRETS_KEY; endpoints are
stored sealed, never as plaintext; and reseal (the function and `kovra secrets reseal`)
moves every secret, old-key and plaintext alike, under the current key, or changes nothing
when a secret does not open; the command moves mandates, collection runs and partners'
secrets too, and counts them."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import stat
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import asyncpg
import pytest

from gateway.collections import records
from gateway.collections.sealed import (
    open_mandate_details,
    open_run_message,
    seal_mandate_details,
    seal_run_message,
)
from gateway.infra.database.migrate import migrate
from gateway.infra.sealing import SecretBox, SecretUnreadable, sandbox_key_material, sealed_prefix
from gateway.settings import SettingsError, load_settings
from gateway.tenancy.records import create_tenant
from gateway.webhooks.records.endpoints import create_endpoint, reseal_secrets
from gateway.webhooks.signing import new_secret
from tests import redis_server
from tests.gateway.kovra_cli import run_kovra

old_key = "the-key-before-the-rotation-" + "a" * 32
new_key = "the-key-after-the-rotation-" + "b" * 32
row = uuid.uuid4().bytes


def test_a_sealed_secret_opens_for_its_row_only() -> None:
    box = SecretBox(new_key)
    secret = new_secret()
    sealed = box.seal(secret, bound_to=row)
    assert sealed.startswith(f"{sealed_prefix}{box.current_key_id}:")
    assert secret not in sealed
    assert box.open(sealed, bound_to=row) == secret
    assert box.seal(secret, bound_to=row) != sealed  # A fresh nonce every time.
    with pytest.raises(SecretUnreadable, match="another row"):
        box.open(sealed, bound_to=uuid.uuid4().bytes)


def test_an_altered_value_does_not_open() -> None:
    box = SecretBox(new_key)
    sealed = box.seal(new_secret(), bound_to=row)
    flipped = sealed[:-3] + ("A" if sealed[-3] != "A" else "B") + sealed[-2:]
    with pytest.raises(SecretUnreadable):
        box.open(flipped, bound_to=row)
    with pytest.raises(SecretUnreadable):
        box.open(sealed[: len(sealed) // 2], bound_to=row)
    with pytest.raises(SecretUnreadable, match="neither sealed"):
        box.open("plain text", bound_to=row)


def test_previous_keys_open_and_unknown_keys_are_named() -> None:
    sealed = SecretBox(old_key).seal("whsec_abc", bound_to=row)
    rotated = SecretBox(new_key, previous=[old_key])
    assert rotated.open(sealed, bound_to=row) == "whsec_abc"
    assert not rotated.is_current(sealed)
    old_id = SecretBox(old_key).current_key_id
    with pytest.raises(SecretUnreadable, match=old_id):
        SecretBox(new_key).open(sealed, bound_to=row)


def test_a_secret_stored_before_sealing_still_opens() -> None:
    assert SecretBox(new_key).open("whsec_legacy", bound_to=row) == "whsec_legacy"


def test_the_sandbox_key_file_is_made_once_and_private(tmp_path: Path) -> None:
    with ProcessPoolExecutor(max_workers=4) as pool:
        materials = set(pool.map(sandbox_key_material, [tmp_path] * 8))
    assert len(materials) == 1
    assert stat.S_IMODE(os.stat(tmp_path / "secrets.key").st_mode) == 0o600
    assert sandbox_key_material(tmp_path) in materials


def test_production_needs_a_secrets_key_and_keys_are_long() -> None:
    with pytest.raises(SettingsError, match="KOVRA_SECRETS_KEY is required"):
        load_settings({"KOVRA_ENV": "production", "TB_ADDRESSES": "3000"})
    with pytest.raises(SettingsError) as raised:
        load_settings(
            {"KOVRA_SECRETS_KEY": "short", "KOVRA_SECRETS_KEYS_PREVIOUS": f"{old_key},short"}
        )
    assert "KOVRA_SECRETS_KEY must be" in str(raised.value)
    assert "KOVRA_SECRETS_KEYS_PREVIOUS" in str(raised.value)
    settings = load_settings({"KOVRA_SECRETS_KEY": new_key, "KOVRA_SECRETS_KEYS_PREVIOUS": old_key})
    assert settings.secrets_keys_previous == (old_key,)


async def _endpoint(pool: asyncpg.Pool, tenant_id: int, box: SecretBox) -> tuple[uuid.UUID, str]:
    endpoint_id, secret = uuid.uuid4(), new_secret()
    await create_endpoint(
        pool,
        box,
        endpoint_id=endpoint_id,
        tenant_id=tenant_id,
        url="https://hooks.example.com/",
        description=None,
        enabled_events=["*"],
        secret=secret,
    )
    return endpoint_id, secret


async def test_endpoints_are_stored_sealed(pool: asyncpg.Pool) -> None:
    tenant = await create_tenant(pool, name="sealed", tier="growth", compliance_region="EU")
    box = SecretBox(new_key)
    endpoint_id, secret = await _endpoint(pool, tenant.id, box)
    stored = await pool.fetchval("SELECT secret FROM webhook_endpoints WHERE id = $1", endpoint_id)
    assert stored.startswith(sealed_prefix)
    assert secret.removeprefix("whsec_") not in stored
    assert box.open(stored, bound_to=endpoint_id.bytes) == secret


async def test_reseal_moves_every_secret_under_the_current_key(pool: asyncpg.Pool) -> None:
    tenant = await create_tenant(pool, name="reseal", tier="growth", compliance_region="EU")
    sealed_old, secret_old = await _endpoint(pool, tenant.id, SecretBox(old_key))
    current, _ = await _endpoint(pool, tenant.id, SecretBox(new_key))
    legacy = uuid.uuid4()
    await pool.execute(
        """INSERT INTO webhook_endpoints (id, tenant_id, url, enabled_events, secret,
               previous_secret, previous_secret_expires_at)
           VALUES ($1, $2, 'https://old.example.com/', '{*}', 'whsec_legacy', 'whsec_before',
                   now() + interval '1 hour')""",
        legacy,
        tenant.id,
    )
    box = SecretBox(new_key, previous=[old_key])
    assert await reseal_secrets(pool, box) == 2
    assert await reseal_secrets(pool, box) == 0
    rows = {
        record["id"]: record
        for record in await pool.fetch("SELECT id, secret, previous_secret FROM webhook_endpoints")
    }
    only_new = SecretBox(new_key)
    assert only_new.open(rows[sealed_old]["secret"], bound_to=sealed_old.bytes) == secret_old
    assert only_new.open(rows[legacy]["secret"], bound_to=legacy.bytes) == "whsec_legacy"
    assert only_new.open(rows[legacy]["previous_secret"], bound_to=legacy.bytes) == "whsec_before"
    assert rows[sealed_old]["previous_secret"] is None
    assert all(only_new.is_current(rows[i]["secret"]) for i in (sealed_old, current, legacy))


async def _mandate_and_run(pool: asyncpg.Pool, tenant_id: int, box: SecretBox) -> uuid.UUID:
    """A mandate and a collection run sealed by `box`; the id of both."""
    object_id = uuid.uuid4()
    await records.insert_mandate(
        pool,
        records.NewMandate(
            compliance_region="EU",
            id=object_id,
            tenant_id=tenant_id,
            customer_id=uuid.uuid4(),
            provider="sepa_dd",
            currency="EUR",
            reference="gym 7",
            bank_details_sealed=seal_mandate_details(
                box, {"iban": "DE89370400440532013000"}, "Erika Mustermann", mandate_id=object_id
            ),
            bank_details_masked={"iban": "••••3000"},
            consent_accepted_at=datetime.datetime.now(tz=datetime.UTC),
            consent_ip="203.0.113.7",
            consent_user_agent="tests",
        ),
    )
    await pool.execute(
        """INSERT INTO collection_runs (compliance_region, id, tenant_id, provider, message_type,
               message) VALUES ('EU', $1, $2, 'sepa_dd', 'pain.008', $3)""",
        object_id,
        tenant_id,
        seal_run_message(box, b"<Document>Erika Mustermann</Document>", run_id=object_id),
    )
    return object_id


async def _partner(pool: asyncpg.Pool, tenant_id: int, box: SecretBox) -> tuple[uuid.UUID, str]:
    """An http partner whose signing secret `box` sealed; its id and the secret."""
    partner_id, secret = uuid.uuid4(), new_secret()
    await pool.execute(
        """INSERT INTO partners (id, tenant_id, kind, name, currency, adapter, reference, url,
               secret_sealed) VALUES ($1, $2, 'pension', 'Fund', 'EUR', 'http', 'P-1',
               'https://fund.example/orders', $3)""",
        partner_id,
        tenant_id,
        box.seal(secret, bound_to=partner_id.bytes),
    )
    return partner_id, secret


async def test_the_cli_reseals_and_makes_keys(empty_database: str, tmp_path: Path) -> None:
    await migrate(empty_database)
    pool = await asyncpg.create_pool(empty_database, min_size=1, max_size=2)
    try:
        tenant = await create_tenant(pool, name="cli", tier="growth", compliance_region="EU")
        endpoint_id, secret = await _endpoint(pool, tenant.id, SecretBox(old_key))
        object_id = await _mandate_and_run(pool, tenant.id, SecretBox(old_key))
        partner_id, partner_secret = await _partner(pool, tenant.id, SecretBox(old_key))
        made = await asyncio.to_thread(run_kovra, ["secrets", "new-key"], {})
        assert made.returncode == 0, made.stderr
        key = made.stdout.strip()
        assert len(key) >= 32
        environment = {
            "DATABASE_URL": empty_database,
            "REDIS_URL": redis_server.redis_url(12),
            "KOVRA_DATA_DIR": str(tmp_path),
            "KOVRA_SECRETS_KEY": key,
        }
        before = await pool.fetchval("SELECT secret FROM webhook_endpoints")
        refused = await asyncio.to_thread(run_kovra, ["secrets", "reseal"], environment)
        assert refused.returncode == 1
        assert "nothing was resealed" in refused.stderr
        assert await pool.fetchval("SELECT secret FROM webhook_endpoints") == before
        environment["KOVRA_SECRETS_KEYS_PREVIOUS"] = old_key
        result = await asyncio.to_thread(run_kovra, ["secrets", "reseal"], environment)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {
            "resealed": 1,
            "customers": 0,
            "mandates": 1,
            "collection_runs": 1,
            "partners": 1,
            "key_id": SecretBox(key).current_key_id,
        }
        only_new = SecretBox(key)
        stored = await pool.fetchval("SELECT secret FROM webhook_endpoints")
        assert only_new.open(stored, bound_to=endpoint_id.bytes) == secret
        mandate = await pool.fetchval("SELECT bank_details_sealed FROM mandates")
        assert open_mandate_details(only_new, mandate, mandate_id=object_id)[1] == (
            "Erika Mustermann"
        )
        message = await pool.fetchval("SELECT message FROM collection_runs")
        assert only_new.is_current(message)
        assert open_run_message(only_new, message, run_id=object_id) == (
            "<Document>Erika Mustermann</Document>"
        )
        sealed = await pool.fetchval("SELECT secret_sealed FROM partners")
        assert only_new.open(sealed, bound_to=partner_id.bytes) == partner_secret
    finally:
        await pool.close()
