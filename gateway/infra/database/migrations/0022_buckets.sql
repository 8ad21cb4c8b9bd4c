-- Buckets, allocation rules and allocation lines (SPEC §11).
--
-- A bucket is a sub-account of the tenant's wallet in its currency: `sub_account` comes from
-- a sequence (1 .. 2^32-1, TigerBeetle's sub-account field), unique across tenants, and the
-- ledger account is opened before the row is written. A bucket paid on to a partner keeps
-- the partner's ledger number (its PARTNER_SETTLEMENT sub-account) as it was at creation.
-- Buckets and rules are a tenant's configuration: plain tables with `tenant_id`.
--
-- Allocation lines are a customer's money moving (one bucket's share of a run): regulated,
-- LIST-partitioned by `compliance_region` like collections. A line's id derives from its run
-- and its rule, and `allocation_plans` holds one row per run, so a run resumed after a crash
-- finds the plan it recorded first and never records a second.

CREATE SEQUENCE bucket_sub_accounts AS bigint MINVALUE 1 MAXVALUE 4294967295 NO CYCLE;

CREATE TABLE buckets (
    id                     uuid PRIMARY KEY,
    tenant_id              bigint NOT NULL,
    customer_id            uuid NOT NULL,
    kind                   text NOT NULL CHECK (kind IN ('savings', 'rent', 'loan', 'tax',
                                                         'investment', 'subscription',
                                                         'pension')),
    name                   text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    currency               text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    sub_account            bigint NOT NULL UNIQUE CHECK (sub_account BETWEEN 1 AND 4294967295),
    partner_id             uuid,
    partner_ledger_number  bigint CHECK (partner_ledger_number BETWEEN 1 AND 4294967295),
    account_reference      text CHECK (length(account_reference) BETWEEN 1 AND 64),
    target_amount_minor    bigint CHECK (target_amount_minor > 0),
    created_at             timestamptz NOT NULL DEFAULT now(),
    CHECK ((partner_id IS NULL) = (partner_ledger_number IS NULL))
);
CREATE INDEX buckets_customer ON buckets (tenant_id, customer_id, created_at, id);

CREATE TABLE rules (
    id                   uuid PRIMARY KEY,
    tenant_id            bigint NOT NULL,
    customer_id          uuid NOT NULL,
    bucket_id            uuid NOT NULL REFERENCES buckets (id),
    kind                 text NOT NULL CHECK (kind IN ('percentage', 'fixed', 'threshold',
                                                       'remainder')),
    priority             integer NOT NULL CHECK (priority BETWEEN 0 AND 10000),
    percent_bps          integer CHECK (percent_bps BETWEEN 1 AND 10000),
    amount_minor         bigint CHECK (amount_minor > 0),
    above_minor          bigint CHECK (above_minor >= 0),
    minimum_left_minor   bigint CHECK (minimum_left_minor >= 0),
    cap_minor            bigint CHECK (cap_minor > 0),
    cap_period           text CHECK (cap_period IN ('day', 'week', 'month')),
    days_of_month        smallint[] CHECK (cardinality(days_of_month) BETWEEN 1 AND 31
                                           AND 1 <= ALL (days_of_month)
                                           AND 31 >= ALL (days_of_month)),
    active_from          timestamptz,
    active_until         timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    deleted_at           timestamptz,
    CHECK ((kind = 'percentage') = (percent_bps IS NOT NULL)),
    CHECK ((kind = 'fixed') = (amount_minor IS NOT NULL)),
    CHECK ((kind = 'threshold') = (above_minor IS NOT NULL)),
    CHECK ((cap_minor IS NULL) = (cap_period IS NULL)),
    CHECK (active_from IS NULL OR active_until IS NULL OR active_from < active_until)
);
CREATE INDEX rules_customer ON rules (tenant_id, customer_id, created_at, id);
CREATE INDEX rules_live ON rules (tenant_id, customer_id) WHERE deleted_at IS NULL;

CREATE TABLE allocation_plans (
    compliance_region   text NOT NULL,
    orchestration_id    uuid NOT NULL,
    tenant_id           bigint NOT NULL,
    customer_id         uuid NOT NULL,
    currency            text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    amount_minor        bigint NOT NULL CHECK (amount_minor > 0),
    unallocated_minor   bigint NOT NULL CHECK (unallocated_minor BETWEEN 0 AND amount_minor),
    allocated_at        timestamptz NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (compliance_region, orchestration_id)
) PARTITION BY LIST (compliance_region);
CREATE TABLE allocation_plans_eu PARTITION OF allocation_plans FOR VALUES IN ('EU');
CREATE TABLE allocation_plans_uk PARTITION OF allocation_plans FOR VALUES IN ('UK');
CREATE TABLE allocation_plans_id PARTITION OF allocation_plans FOR VALUES IN ('ID');

CREATE TABLE allocation_lines (
    compliance_region      text NOT NULL,
    id                     uuid NOT NULL,
    orchestration_id       uuid NOT NULL,
    position               smallint NOT NULL CHECK (position >= 0),
    tenant_id              bigint NOT NULL,
    customer_id            uuid NOT NULL,
    rule_id                uuid NOT NULL,
    bucket_id              uuid NOT NULL,
    bucket_sub_account     bigint NOT NULL CHECK (bucket_sub_account BETWEEN 1 AND 4294967295),
    partner_id             uuid,
    partner_ledger_number  bigint CHECK (partner_ledger_number BETWEEN 1 AND 4294967295),
    account_reference      text CHECK (length(account_reference) BETWEEN 1 AND 64),
    currency               text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    amount_minor           bigint NOT NULL CHECK (amount_minor > 0),
    allocated_at           timestamptz NOT NULL,
    created_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (compliance_region, id),
    UNIQUE (compliance_region, orchestration_id, position),
    CHECK ((partner_id IS NULL) = (partner_ledger_number IS NULL))
) PARTITION BY LIST (compliance_region);
CREATE TABLE allocation_lines_eu PARTITION OF allocation_lines FOR VALUES IN ('EU');
CREATE TABLE allocation_lines_uk PARTITION OF allocation_lines FOR VALUES IN ('UK');
CREATE TABLE allocation_lines_id PARTITION OF allocation_lines FOR VALUES IN ('ID');
CREATE INDEX allocation_lines_run ON allocation_lines (orchestration_id, position);
-- Period caps: what each rule allocated since the start of its day, week or month.
CREATE INDEX allocation_lines_rule_time ON allocation_lines (tenant_id, rule_id, allocated_at);
