-- Schedules (SPEC §11): a customer's pulls that start by themselves, either on a cron
-- expression in a time zone (`cron`) or when the provider reports the mandate's account at
-- or above a threshold (`balance_threshold`). Configuration, not a money movement: a plain
-- table keyed by id with `tenant_id`; the orchestrations a schedule starts are the regulated
-- rows (partitioned by region, migration 0023).
--
-- `next_run_at` is the next instant the schedule is due: a cron schedule's next occurrence
-- (computed in its time zone), a balance trigger's next check. The due pass claims rows
-- `FOR UPDATE SKIP LOCKED` and advances it in the same transaction, so any number of workers
-- share the work without running an occurrence twice.

CREATE TABLE schedules (
    id                  uuid PRIMARY KEY,
    tenant_id           bigint NOT NULL,
    compliance_region   text NOT NULL CHECK (compliance_region IN ('EU', 'UK', 'ID')),
    customer_id         uuid NOT NULL,
    mandate_id          uuid NOT NULL,
    kind                text NOT NULL CHECK (kind IN ('cron', 'balance_threshold')),
    currency            text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    -- NULL only on a balance trigger: it pulls the excess above the threshold.
    amount_minor        bigint CHECK (amount_minor > 0),
    reference           text NOT NULL CHECK (length(reference) BETWEEN 1 AND 140),
    cron                text CHECK (length(cron) BETWEEN 9 AND 100),
    timezone            text CHECK (length(timezone) BETWEEN 1 AND 64),
    threshold_minor     bigint CHECK (threshold_minor >= 0),
    check_every_minutes integer CHECK (check_every_minutes BETWEEN 1 AND 10080),
    status              text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deleted')),
    next_run_at         timestamptz NOT NULL,
    last_run_at         timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz,
    CHECK ((status = 'deleted') = (deleted_at IS NOT NULL)),
    CHECK (kind <> 'cron' OR (cron IS NOT NULL AND timezone IS NOT NULL
                              AND amount_minor IS NOT NULL AND threshold_minor IS NULL
                              AND check_every_minutes IS NULL)),
    CHECK (kind <> 'balance_threshold' OR (cron IS NULL AND timezone IS NULL
                                           AND threshold_minor IS NOT NULL
                                           AND check_every_minutes IS NOT NULL))
);
CREATE INDEX schedules_due ON schedules (next_run_at) WHERE status = 'active';
CREATE INDEX schedules_customer ON schedules (tenant_id, customer_id, created_at, id)
    WHERE status = 'active';

-- Each occurrence a schedule ran, once: the primary key is what makes "exactly once across
-- workers" hold, and the row is inserted in the same transaction as the orchestration it
-- starts. A balance trigger's occurrence is the check that fired, with the balance seen.
CREATE TABLE schedule_occurrences (
    schedule_id      uuid NOT NULL REFERENCES schedules (id),
    occurrence_at    timestamptz NOT NULL,
    tenant_id        bigint NOT NULL,
    orchestration_id uuid NOT NULL UNIQUE,
    amount_minor     bigint NOT NULL CHECK (amount_minor > 0),
    balance_minor    bigint,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schedule_id, occurrence_at)
);

-- The income forecast reads a customer's succeeded collections through their mandates.
CREATE INDEX mandates_customer ON mandates (customer_id);
