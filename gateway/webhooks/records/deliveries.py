"""Deliveries in Postgres: claiming due attempts, recording outcomes, redelivering.

A claim is one statement: it locks due rows with SKIP LOCKED, increments their attempt and
leases them to the claiming worker (`leased_by`, `leased_until`; `next_attempt_at` moves
past the delivery timeout), so another worker skips them now and retries them only if this
worker dies before writing the outcome. That is what makes delivery at-least-once and keeps
two workers from making the same attempt. Outcomes are written for the attempt they belong
to only, so a worker whose lease ran out cannot overwrite a newer attempt. The worker writes
many outcomes in one statement, and the outcome ends the lease.

The bound on attempts in flight for one endpoint (its `in_flight_max`, set by its tenant)
holds across workers: a claim counts the live leases other workers hold on the endpoint,
besides the claiming worker's own attempts (which it knows better than the table: an attempt
that ended has its outcome queued).
Claims take turns on one transaction-scoped advisory lock, so two claims never both count
before either has leased. Workers share each bound evenly: every claim says its worker is
alive (`webhook_workers`), and a worker takes at most its share of an endpoint's bound, the
bound divided by the workers seen within two leases, rounded up. Otherwise the worker that
first filled an endpoint's slots refilled each as its attempt ended, before another worker
woke to claim, and more workers did not spread the work.

Since claims take turns, a claim's cost bounds how fast every worker together can start
attempts: it reads the oldest `claim_scan_max` due deliveries by the due index, numbers
those per endpoint, and locks the chosen ones by primary key, so it costs the same whatever
the backlog, and a planner without fresh statistics has no join of the backlog with itself
to get wrong.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg
import msgspec

from gateway.webhooks.records.events import DeliveryRow, delivery_columns, delivery_row

# Due deliveries a claim looks at, oldest first: enough to fill a claim across endpoints at
# their bounds, few enough that a claim costs milliseconds.
claim_scan_max = 2_000
# A worker counts towards the shares for this many leases after its last claim: a live
# worker at its own in-flight bound claims again only as its attempts end, within a lease.
worker_live_leases = 2
# Its row is deleted by another worker's claim after this many.
worker_forgotten_leases = 20
# A stopping worker waits this long at most to remove itself (it is forgotten anyway).
forget_timeout_seconds = 5.0
error_length_max = 500


def delivery_id(*, event_id: uuid.UUID, endpoint_id: uuid.UUID) -> uuid.UUID:
    """The stable id of one event's deliveries to one endpoint (as migration 0008's trigger)."""
    return uuid.UUID(hex=hashlib.md5(f"{event_id}:{endpoint_id}".encode()).hexdigest())  # noqa: S324 - an id, not a secret.


class Claimed(msgspec.Struct, frozen=True, kw_only=True):
    """One attempt a worker now owns, with what it needs to send it."""

    id: uuid.UUID
    endpoint_id: uuid.UUID
    attempt: int
    round_attempt: int
    event_id: uuid.UUID
    event_type: str
    payload: dict[str, Any]
    event_created_at: datetime.datetime
    url: str
    # As stored, sealed (gateway.infra.sealing): the worker opens them when it signs.
    sealed_secrets: list[str]


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    attempt: int
    status: str  # delivered | pending | dead
    next_attempt_at: datetime.datetime | None
    # delivered | http_error | timeout | connection_error | refused | secret_unreadable
    outcome: str
    status_code: int | None
    error: str | None
    duration_ms: int


# "kovrawhc" in ASCII: claims serialise on it (see the module's docstring). It differs
# from the migration and audit keys, so a claim never waits for either.
claim_lock_key = 0x6B6F767261776863

# Before the lock, in the same statement: this worker is alive now, and workers unseen for
# `$3` seconds are forgotten (a worker that stops forgets itself: `forget_worker`).
_seen_then_lock = """
WITH gone AS (
    DELETE FROM webhook_workers WHERE seen_at < now() - make_interval(secs => $3) AND id <> $2
), seen AS (
    INSERT INTO webhook_workers (id, seen_at) VALUES ($2, now())
    ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at
)
SELECT pg_advisory_xact_lock($1)
"""

_claim = """
WITH live AS (
    SELECT GREATEST(count(*), 1) AS workers
      FROM webhook_workers
     WHERE seen_at >= now() - make_interval(secs => $7)
), others AS (
    SELECT endpoint_id, count(*) AS in_flight
      FROM webhook_deliveries
     WHERE leased_until > now() AND leased_by <> $6 AND status = 'pending'
     GROUP BY endpoint_id
), oldest AS (
    SELECT id, endpoint_id, next_attempt_at
      FROM webhook_deliveries
     WHERE status = 'pending' AND next_attempt_at <= now()
     ORDER BY next_attempt_at
     LIMIT $5
), due AS (
    SELECT id, endpoint_id, next_attempt_at,
           row_number() OVER (PARTITION BY endpoint_id ORDER BY next_attempt_at, id) AS place
      FROM oldest
), picked AS (
    SELECT due.id, due.next_attempt_at
      FROM due
      JOIN webhook_endpoints bound ON bound.id = due.endpoint_id
      LEFT JOIN unnest($2::uuid[], $3::int[]) AS own(endpoint_id, in_flight)
             ON own.endpoint_id = due.endpoint_id
      LEFT JOIN others ON others.endpoint_id = due.endpoint_id
      CROSS JOIN live
     WHERE due.place <= bound.in_flight_max - COALESCE(own.in_flight, 0)
                        - COALESCE(others.in_flight, 0)
       AND due.place <= ceil(bound.in_flight_max::numeric / live.workers)
                        - COALESCE(own.in_flight, 0)
     ORDER BY due.next_attempt_at, due.id
     LIMIT $1
), chosen AS (
    SELECT d.id
      FROM webhook_deliveries d
     WHERE d.id = ANY (ARRAY(SELECT id FROM picked))
       AND d.status = 'pending' AND d.next_attempt_at <= now()
       FOR UPDATE OF d SKIP LOCKED
)
UPDATE webhook_deliveries d
   SET attempt = d.attempt + 1,
       next_attempt_at = now() + make_interval(secs => $4),
       last_attempt_at = now(),
       leased_by = $6,
       leased_until = now() + make_interval(secs => $4)
  FROM chosen, events e, webhook_endpoints w
 WHERE d.id = chosen.id AND e.id = d.event_id AND w.id = d.endpoint_id
RETURNING d.id, d.endpoint_id, d.attempt, d.attempt - d.round_base AS round_attempt,
          e.id AS event_id, e.type AS event_type, e.payload, e.created_at AS event_created_at,
          w.url, w.secret, w.previous_secret,
          w.previous_secret_expires_at > now() AS previous_active
"""


async def claim(
    pool: asyncpg.Pool,
    *,
    worker_id: uuid.UUID,
    limit: int,
    in_flight_by_endpoint: Mapping[uuid.UUID, int],
    lease_seconds: float,
) -> list[Claimed]:
    """Lease up to `limit` due attempts to `worker_id`, at most each endpoint's
    `in_flight_max` in flight to it across every worker: fewer by the live leases of other
    workers and by this worker's own attempts in flight (`in_flight_by_endpoint`), and at
    most this worker's share of the bound among the workers seen lately."""
    if limit <= 0:
        return []
    busy = list(in_flight_by_endpoint.items())
    live_seconds = worker_live_leases * lease_seconds
    async with pool.acquire() as connection, connection.transaction():
        # A statement of its own, so the claim's snapshot is taken after the lock is held
        # and sees the leases of the claim before it (read committed).
        await connection.execute(
            _seen_then_lock,
            claim_lock_key,
            worker_id,
            worker_forgotten_leases * lease_seconds,
        )
        records = await connection.fetch(
            _claim,
            limit,
            [endpoint for endpoint, _ in busy],
            [in_flight for _, in_flight in busy],
            lease_seconds,
            claim_scan_max,
            worker_id,
            live_seconds,
        )
    return [_claimed(record) for record in records]


async def forget_worker(pool: asyncpg.Pool, *, worker_id: uuid.UUID) -> None:
    """A stopping worker leaves the count at once, so the others' shares grow back now
    rather than after two leases."""
    await pool.execute(
        "DELETE FROM webhook_workers WHERE id = $1", worker_id, timeout=forget_timeout_seconds
    )


def _claimed(record: asyncpg.Record) -> Claimed:
    sealed_secrets = [record["secret"]]
    if record["previous_active"]:
        sealed_secrets.append(record["previous_secret"])
    return Claimed(
        id=record["id"],
        endpoint_id=record["endpoint_id"],
        attempt=record["attempt"],
        round_attempt=record["round_attempt"],
        event_id=record["event_id"],
        event_type=record["event_type"],
        payload=json.loads(record["payload"]),
        event_created_at=record["event_created_at"],
        url=record["url"],
        sealed_secrets=sealed_secrets,
    )


async def record_outcomes(pool: asyncpg.Pool, outcomes: list[Outcome]) -> int:
    """Write outcomes and the attempt log in one transaction; how many deliveries changed
    (an outcome for a superseded attempt changes nothing)."""
    if not outcomes:
        return 0
    errors = [None if o.error is None else o.error[:error_length_max] for o in outcomes]
    async with pool.acquire() as connection, connection.transaction():
        result = await connection.execute(
            """UPDATE webhook_deliveries d
                  SET status = o.status, next_attempt_at = o.next_attempt_at,
                      last_status_code = o.status_code, last_error = o.error,
                      leased_by = NULL, leased_until = NULL,
                      delivered_at = CASE WHEN o.status = 'delivered' THEN now()
                                          ELSE d.delivered_at END
                 FROM unnest($1::uuid[], $2::int[], $3::text[], $4::timestamptz[], $5::int[],
                             $6::text[]) AS o(id, attempt, status, next_attempt_at, status_code,
                                              error)
                WHERE d.id = o.id AND d.attempt = o.attempt AND d.status = 'pending'""",
            [o.id for o in outcomes],
            [o.attempt for o in outcomes],
            [o.status for o in outcomes],
            [o.next_attempt_at for o in outcomes],
            [o.status_code for o in outcomes],
            errors,
        )
        await connection.execute(
            """INSERT INTO webhook_attempts (delivery_id, attempt, outcome, status_code, error,
                                             duration_ms)
               SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::int[], $5::text[],
                                    $6::int[])
               ON CONFLICT DO NOTHING""",
            [o.id for o in outcomes],
            [o.attempt for o in outcomes],
            [o.outcome for o in outcomes],
            [o.status_code for o in outcomes],
            errors,
            [o.duration_ms for o in outcomes],
        )
    return int(result.split()[-1])


async def redeliver(
    pool: asyncpg.Pool,
    *,
    tenant_id: int,
    event_id: uuid.UUID,
    event_type: str,
    endpoint_id: uuid.UUID | None,
) -> list[DeliveryRow]:
    """Send the event again now, with a fresh retry schedule: to one endpoint, or to every
    endpoint of the tenant whose filter takes it (also ones created after the event).
    Delivered, dead-lettered and pending deliveries alike start a new round."""
    family = event_type.split(".", maxsplit=1)[0]
    records = await pool.fetch(
        f"""INSERT INTO webhook_deliveries AS d (id, event_id, endpoint_id, tenant_id,
                                                 next_attempt_at)
            SELECT md5($2::uuid::text || ':' || w.id::text)::uuid, $2::uuid, w.id, w.tenant_id,
                   now()
              FROM webhook_endpoints w
             WHERE w.tenant_id = $1 AND w.deleted_at IS NULL
               AND (w.id = $3 OR ($3::uuid IS NULL AND w.enabled_events && $4::text[]))
            ON CONFLICT (id) DO UPDATE
               SET status = 'pending', round_base = d.attempt, next_attempt_at = now()
         RETURNING {delivery_columns}""",  # noqa: S608 - fixed column list.
        tenant_id,
        event_id,
        endpoint_id,
        ["*", event_type, f"{family}.*"],
    )
    return [delivery_row(record) for record in records]


async def queue_depth(pool: asyncpg.Pool) -> int:
    """Attempts due now and not yet claimed: how far behind delivery is."""
    count = await pool.fetchval(
        """SELECT count(*) FROM webhook_deliveries
            WHERE status = 'pending' AND next_attempt_at <= now()"""
    )
    return int(count)


__all__ = [
    "Claimed",
    "DeliveryRow",
    "Outcome",
    "claim",
    "delivery_id",
    "forget_worker",
    "record_outcomes",
]
