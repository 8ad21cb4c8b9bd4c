"""What the income forecast reads: a customer's succeeded collections in a currency, summed
per collection date, the latest days first (migration 0019's collections and mandates)."""

from __future__ import annotations

import datetime
import uuid

import asyncpg

from ledger.invariants import ensure

# The most days of income one forecast reads: about eight years of monthly income, and a
# bound on the statement's work for a customer paid daily.
observation_days_max = 100


async def income_days(
    pool: asyncpg.Pool,
    *,
    region: str,
    tenant_id: int,
    customer_id: uuid.UUID,
    currency: str,
    limit: int = observation_days_max,
) -> list[tuple[datetime.date, int]]:
    """(collection date, amount collected that day) of the customer's succeeded collections
    in `currency`, the latest `limit` days, oldest first."""
    ensure(0 < limit <= observation_days_max, "a forecast reads a bounded history")
    records = await pool.fetch(
        """SELECT day, amount_minor FROM (
               SELECT c.collection_date AS day, sum(c.amount_minor)::bigint AS amount_minor
                 FROM mandates m
                 JOIN collections c
                   ON c.compliance_region = m.compliance_region AND c.mandate_id = m.id
                WHERE m.compliance_region = $1 AND m.tenant_id = $2 AND m.customer_id = $3
                  AND c.currency = $4 AND c.status = 'succeeded'
                GROUP BY c.collection_date
                ORDER BY c.collection_date DESC
                LIMIT $5) latest
            ORDER BY day""",
        region,
        tenant_id,
        customer_id,
        currency,
        limit,
    )
    return [(record["day"], record["amount_minor"]) for record in records]
