-- Orchestration runs (SPEC §11): a pull under a mandate, split by the customer's rules into
-- buckets and paid on to partners, every step recorded.
--
-- A run moves a customer's money, so its rows are regulated data, LIST-partitioned by
-- `compliance_region` like collections: the run, its steps, and its partner orders (one per
-- allocation line whose bucket names a partner; the order's id is the line's id, so a
-- resumed run finds the same order, and the partner keys its idempotency on it).
--
-- `next_attempt_at` is the worker's lease and backoff: a run or order is taken by one
-- worker at a time (FOR UPDATE SKIP LOCKED), and one left by a dead worker is taken again
-- once its lease ran out.

CREATE TABLE orchestrations (
    compliance_region   text NOT NULL,
    id                  uuid NOT NULL,
    tenant_id           bigint NOT NULL,
    customer_id         uuid NOT NULL,
    mandate_id          uuid NOT NULL,
    currency            text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    amount_minor        bigint NOT NULL CHECK (amount_minor > 0),
    reference           text NOT NULL CHECK (length(reference) BETWEEN 1 AND 140),
    trigger             text NOT NULL CHECK (trigger IN ('user', 'schedule', 'balance_threshold')),
    schedule_id         uuid,
    occurrence_at       timestamptz,
    status              text NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'collecting', 'allocating', 'delivering',
                                          'completed', 'failed')),
    collection_id       uuid,
    -- What the collection brought in (0 until its provider confirmed it), and, once the
    -- allocation is in the ledger, what went to buckets and what stayed on the wallet.
    collected_minor     bigint NOT NULL DEFAULT 0 CHECK (collected_minor >= 0),
    allocated_minor     bigint CHECK (allocated_minor >= 0),
    unallocated_minor   bigint CHECK (unallocated_minor >= 0),
    failure_code        text CHECK (length(failure_code) <= 64),
    failure_description text CHECK (length(failure_description) <= 500),
    next_attempt_at     timestamptz NOT NULL DEFAULT now(),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (compliance_region, id),
    CHECK (allocated_minor IS NULL OR allocated_minor + unallocated_minor = collected_minor),
    CHECK ((trigger = 'user') = (schedule_id IS NULL))
) PARTITION BY LIST (compliance_region);
CREATE TABLE orchestrations_eu PARTITION OF orchestrations FOR VALUES IN ('EU');
CREATE TABLE orchestrations_uk PARTITION OF orchestrations FOR VALUES IN ('UK');
CREATE TABLE orchestrations_id PARTITION OF orchestrations FOR VALUES IN ('ID');
CREATE INDEX orchestrations_tenant_created ON orchestrations (tenant_id, created_at, id);
CREATE INDEX orchestrations_customer ON orchestrations (customer_id, created_at);
CREATE INDEX orchestrations_due ON orchestrations (next_attempt_at)
    WHERE status IN ('pending', 'allocating');
CREATE INDEX orchestrations_collecting ON orchestrations (collection_id)
    WHERE status = 'collecting';
CREATE INDEX orchestrations_delivering ON orchestrations (updated_at)
    WHERE status = 'delivering';

-- Every step of every run, written at the run's start (`intent` succeeded, the rest
-- pending) and moved as the run moves. `position` orders them as the run takes them.
CREATE TABLE orchestration_steps (
    compliance_region text NOT NULL,
    orchestration_id  uuid NOT NULL,
    step              text NOT NULL
                      CHECK (step IN ('intent', 'collect', 'confirmation', 'allocation',
                                      'partner_orders', 'delivery', 'notification')),
    position          smallint NOT NULL CHECK (position BETWEEN 1 AND 7),
    state             text NOT NULL DEFAULT 'pending'
                      CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'skipped')),
    started_at        timestamptz,
    finished_at       timestamptz,
    detail            jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (compliance_region, orchestration_id, step)
) PARTITION BY LIST (compliance_region);
CREATE TABLE orchestration_steps_eu PARTITION OF orchestration_steps FOR VALUES IN ('EU');
CREATE TABLE orchestration_steps_uk PARTITION OF orchestration_steps FOR VALUES IN ('UK');
CREATE TABLE orchestration_steps_id PARTITION OF orchestration_steps FOR VALUES IN ('ID');

-- One order per allocation line paid on to a partner. `pending` (nothing reserved yet),
-- `reserved` (the bucket's money held for the partner, a pending ledger transfer),
-- `delivered` (the partner took it; the hold posted) or `failed` (refused, or unanswered
-- `partner_attempts_max` times; the hold voided, the money back in its bucket).
CREATE TABLE partner_orders (
    compliance_region     text NOT NULL,
    id                    uuid NOT NULL,
    orchestration_id      uuid NOT NULL,
    tenant_id             bigint NOT NULL,
    customer_id           uuid NOT NULL,
    partner_id            uuid NOT NULL,
    bucket_id             uuid NOT NULL,
    bucket_sub_account    bigint NOT NULL CHECK (bucket_sub_account BETWEEN 1 AND 4294967295),
    partner_ledger_number bigint NOT NULL
                          CHECK (partner_ledger_number BETWEEN 1 AND 4294967295),
    account_reference     text CHECK (length(account_reference) <= 140),
    currency              text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    amount_minor          bigint NOT NULL CHECK (amount_minor > 0),
    status                text NOT NULL DEFAULT 'pending'
                          CHECK (status IN ('pending', 'reserved', 'delivered', 'failed')),
    attempts              integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at       timestamptz NOT NULL DEFAULT now(),
    partner_reference     text CHECK (length(partner_reference) BETWEEN 1 AND 64),
    failure_code          text CHECK (length(failure_code) <= 64),
    failure_description   text CHECK (length(failure_description) <= 500),
    delivered_at          timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (compliance_region, id)
) PARTITION BY LIST (compliance_region);
CREATE TABLE partner_orders_eu PARTITION OF partner_orders FOR VALUES IN ('EU');
CREATE TABLE partner_orders_uk PARTITION OF partner_orders FOR VALUES IN ('UK');
CREATE TABLE partner_orders_id PARTITION OF partner_orders FOR VALUES IN ('ID');
CREATE INDEX partner_orders_due ON partner_orders (next_attempt_at)
    WHERE status IN ('pending', 'reserved');
CREATE INDEX partner_orders_orchestration ON partner_orders (orchestration_id);
