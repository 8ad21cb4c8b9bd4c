"""What the collections domain keeps sealed at rest, and how: a mandate's bank details and
account holder's name (bound to the mandate's id), and a collection run's message, which
names every debtor of the run and their account (bound to the run's id, so a message
copied onto another run does not open). Both are resealed under the current key after a
rotation (`kovra secrets reseal`), a bounded batch per transaction.

A run's message stored before runs were sealed is plain text. It is read as it is until
reseal seals it: a sealed message always starts with the sealed prefix, a pain.008 or a
provider's JSON never does.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping

import asyncpg
import msgspec

from gateway.collections import records
from gateway.collections.records import Sealed
from gateway.infra.sealing import SecretBox, document_bytes_max, sealed_prefix
from ledger.invariants import ensure

# A mandate's sealed payload: a name of up to 200 characters and up to 4 bank-detail fields
# (32-character names, 64-character values), JSON with every character escaped at worst
# (6 bytes each): 1,200 + 4 x 576 bytes and punctuation, under 4 KiB. The secrets' 1 KiB is
# too little for a long name in a non-Latin script.
mandate_payload_bytes_max = 4 * 1_024
mandate_reseal_batch_size = 500
# Runs one reseal transaction rewrites: as many as keep it under 64 MiB of plaintext when
# every run is as large as a sealed document may be. Real runs are far smaller.
run_reseal_bytes_max = 64 * 1_024 * 1_024
run_reseal_batch_size = run_reseal_bytes_max // document_bytes_max


def seal_mandate_details(
    box: SecretBox,
    bank_details: Mapping[str, str],
    account_holder_name: str,
    *,
    mandate_id: uuid.UUID,
) -> str:
    """The mandate's bank details and account holder's name, sealed for the mandate."""
    payload = json.dumps(
        {"bank_details": dict(bank_details), "account_holder_name": account_holder_name}
    )
    return box.seal(payload, bound_to=mandate_id.bytes, bytes_max=mandate_payload_bytes_max)


def open_mandate_details(
    box: SecretBox, sealed: str, *, mandate_id: uuid.UUID
) -> tuple[dict[str, str], str]:
    """The bank details and account holder's name sealed for the mandate."""
    opened = msgspec.json.decode(box.open(sealed, bound_to=mandate_id.bytes))
    return dict(opened["bank_details"]), str(opened["account_holder_name"])


def seal_run_message(box: SecretBox, message: bytes, *, run_id: uuid.UUID) -> str:
    """A run's message (UTF-8: XML or JSON), sealed for the run."""
    return box.seal(message.decode(), bound_to=run_id.bytes, bytes_max=document_bytes_max)


def open_run_message(box: SecretBox, stored: str, *, run_id: uuid.UUID) -> str:
    """A run's message as it was sent; one stored before runs were sealed as it is."""
    if not stored.startswith(sealed_prefix):
        return stored
    return box.open(stored, bound_to=run_id.bytes)


async def reseal_mandates(pool: asyncpg.Pool, box: SecretBox) -> int:
    """Seal every mandate's bank details under the current key, a bounded batch per
    transaction; how many mandates changed. `SecretUnreadable` stops it at the first that
    does not open (the batches before it stay resealed: running it again resumes)."""

    def resealed(row: Sealed) -> str:
        payload = box.open(row.sealed, bound_to=row.id.bytes)
        return box.seal(payload, bound_to=row.id.bytes, bytes_max=mandate_payload_bytes_max)

    return await _reseal(
        pool, box, table="mandates", batch_size=mandate_reseal_batch_size, resealed=resealed
    )


async def reseal_runs(pool: asyncpg.Pool, box: SecretBox) -> int:
    """Seal every collection run's message under the current key (and those stored before
    runs were sealed), a bounded batch per transaction; how many runs changed. Stops as
    `reseal_mandates` does."""

    def resealed(row: Sealed) -> str:
        message = open_run_message(box, row.sealed, run_id=row.id)
        return seal_run_message(box, message.encode(), run_id=row.id)

    return await _reseal(
        pool, box, table="collection_runs", batch_size=run_reseal_batch_size, resealed=resealed
    )


async def _reseal(
    pool: asyncpg.Pool,
    box: SecretBox,
    *,
    table: str,
    batch_size: int,
    resealed: Callable[[Sealed], str],
) -> int:
    # Batches walk the table in key order from where the last one ended, so each row is
    # read once however many batches there are.
    ensure(batch_size > 0, "a reseal batch holds rows")
    changed = 0
    after = records.first_key
    while True:
        async with pool.acquire() as connection, connection.transaction():
            rows = await records.sealed_to_reseal(
                connection, table=table, key_id=box.current_key_id, after=after, limit=batch_size
            )
            await records.store_resealed(
                connection,
                table=table,
                rows=[msgspec.structs.replace(row, sealed=resealed(row)) for row in rows],
            )
        changed += len(rows)
        if len(rows) < batch_size:
            return changed
        after = (rows[-1].compliance_region, rows[-1].id)
