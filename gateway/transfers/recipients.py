"""Recipients: bank details validated per corridor and the name screened against the
sanctions lists at creation, stored in Postgres, and published to Redis so a transfer can
check its recipient without a database read."""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Sequence

import asyncpg
import msgspec
from redis.asyncio import Redis

from compliance.audit.chain import append as audit_append
from compliance.audit.outbox import outbox_insert_one, outbox_row
from compliance.decisions import ComplianceCheck
from compliance.errors import ComplianceBlocked
from rails.bank_details import BankDetails, validate_bank_details
from rails.corridors import corridor_for

recipient_cache_seconds = 7 * 86_400


class RecipientRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What the transfer path needs to know about a recipient."""

    id: int
    tenant_id: int
    name: str
    country: str
    currency: str
    status: str
    bank_details: dict[str, str]
    created_at: datetime.datetime


def recipient_cache_key(tenant_id: int, recipient_id: int, namespace: str = "kovra") -> str:
    return f"{namespace}:recipient:{tenant_id}:{recipient_id:032x}"


def normalise(*, country: str, currency: str, details: dict[str, str]) -> BankDetails:
    """Validated bank details, or `InvalidBankDetails`/`UnsupportedCorridor` naming why."""
    corridor_for(country=country, currency=currency)  # Raises UnsupportedCorridor.
    return validate_bank_details(country=country, details=details)


class Recipients:
    """Recipients of one process: created (screened, stored, audited), read through Redis."""

    def __init__(self, *, pool: asyncpg.Pool, redis: Redis, screener: ComplianceCheck) -> None:
        self._pool = pool
        self._redis = redis
        self._screener = screener

    async def create(
        self,
        *,
        tenant_id: int,
        region: str,
        recipient_id: int,
        name: str,
        country: str,
        currency: str,
        details: BankDetails,
    ) -> RecipientRecord:
        """Screen the recipient against the sanctions lists, then store it (the first one,
        if this id was created before) with its screening decision's audit record, and
        publish it. A blocked recipient is refused, audited, and not stored."""
        decision = await self._screener.screen_party(name=name, country=country)
        target = f"recipient:{uuid.UUID(int=recipient_id)}"
        details_of_decision = {
            "tenant_id": tenant_id,
            "score": decision.score,
            "reasons": decision.reasons,
        }
        if decision.outcome == "block":
            await audit_append(
                self._pool,
                actor="compliance",
                action="compliance.block",
                target=target,
                details=details_of_decision,
            )
            raise ComplianceBlocked("compliance refused this recipient; it was not stored")
        # The stored fields are the validator's own inputs, so they can be validated again.
        bank_details = {
            k: str(v) for k, v in msgspec.structs.asdict(details).items() if k != "bank_name"
        }
        audit_row = outbox_row(
            record_id=uuid.UUID(int=recipient_id),
            actor="compliance",
            action=f"compliance.{decision.outcome}",
            target=target,
            details=details_of_decision,
        )
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(
                """INSERT INTO recipients (id, compliance_region, tenant_id, name, country,
                                           currency, bank_details)
                   VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING""",
                uuid.UUID(int=recipient_id),
                region,
                tenant_id,
                name,
                country,
                currency,
                json.dumps(bank_details),
            )
            await connection.execute(outbox_insert_one, *audit_row)
        record = await self.load(
            tenant_id=tenant_id, region=region, recipient_id=recipient_id, use_cache=False
        )
        if record is None:
            raise RuntimeError("a recipient just stored could not be read back")
        return record

    async def load(
        self, *, tenant_id: int, region: str, recipient_id: int, use_cache: bool = True
    ) -> RecipientRecord | None:
        """The tenant's recipient from Redis, else Postgres (then cached); None if unknown."""
        found = await self.load_many([(tenant_id, region, recipient_id)], use_cache=use_cache)
        return found.get((tenant_id, recipient_id))

    async def load_many(
        self, wanted: Sequence[tuple[int, str, int]], *, use_cache: bool = True
    ) -> dict[tuple[int, int], RecipientRecord]:
        """The recipients `wanted` names (tenant id, region, recipient id) by (tenant id,
        recipient id), those that exist: one Redis read for all (unless `use_cache` is
        False), one Postgres read for those Redis lacks, then cached in one pipeline."""
        unique = list(dict.fromkeys(wanted))
        if not unique:
            return {}
        keys = [
            recipient_cache_key(tenant_id, recipient_id) for tenant_id, _, recipient_id in unique
        ]
        cached = await self._redis.mget(keys) if use_cache else [None] * len(unique)
        found: dict[tuple[int, int], RecipientRecord] = {}
        missing: list[tuple[int, str, int]] = []
        for (tenant_id, region, recipient_id), raw in zip(unique, cached, strict=True):
            if raw is None:
                missing.append((tenant_id, region, recipient_id))
            else:
                found[tenant_id, recipient_id] = _record_decoder.decode(raw)
        if missing:
            rows = await self._pool.fetch(
                """SELECT r.id, r.tenant_id, r.name, r.country, r.currency, r.status,
                          r.bank_details, r.created_at
                     FROM unnest($1::text[], $2::uuid[], $3::bigint[]) AS w(region, id, tenant_id)
                     JOIN recipients r ON r.compliance_region = w.region AND r.id = w.id
                                      AND r.tenant_id = w.tenant_id""",
                [region for _, region, _ in missing],
                [uuid.UUID(int=recipient_id) for _, _, recipient_id in missing],
                [tenant_id for tenant_id, _, _ in missing],
            )
            records = [recipient_from_row(row) for row in rows]
            async with self._redis.pipeline(transaction=False) as pipeline:
                for record in records:
                    pipeline.set(
                        recipient_cache_key(record.tenant_id, record.id),
                        msgspec.json.encode(record),
                        ex=recipient_cache_seconds,
                    )
                await pipeline.execute()
            found.update({(record.tenant_id, record.id): record for record in records})
        return found

    async def cache(self, record: RecipientRecord) -> None:
        """Publish the record where transfers look for it (written over whatever was there)."""
        await self._redis.set(
            recipient_cache_key(record.tenant_id, record.id),
            msgspec.json.encode(record),
            ex=recipient_cache_seconds,
        )


_record_decoder = msgspec.json.Decoder(RecipientRecord)


def recipient_from_row(row: asyncpg.Record) -> RecipientRecord:
    """A `recipients` row (the columns `load_recipient` selects) as a record."""
    return RecipientRecord(
        id=row["id"].int,
        tenant_id=row["tenant_id"],
        name=row["name"],
        country=row["country"],
        currency=row["currency"],
        status=row["status"],
        bank_details=json.loads(row["bank_details"]),
        created_at=row["created_at"],
    )
