-- Compliance: review cases (regulated: partitioned by region) and the sanctions lists
-- operators load (`kovra sanctions load`), which every process builds its index from.

CREATE TABLE compliance_cases (
    id                uuid NOT NULL,
    compliance_region text NOT NULL CHECK (compliance_region IN ('EU', 'UK', 'ID')),
    tenant_id         bigint NOT NULL,
    transfer_id       uuid NOT NULL,
    status            text NOT NULL DEFAULT 'open'
                          CHECK (status IN ('open', 'approved', 'rejected')),
    score             integer NOT NULL CHECK (score BETWEEN 0 AND 100),
    reasons           jsonb NOT NULL,
    decided_by        text CHECK (length(decided_by) <= 200),
    note              text CHECK (length(note) <= 1000),
    created_at        timestamptz NOT NULL DEFAULT now(),
    decided_at        timestamptz,
    PRIMARY KEY (compliance_region, id)
) PARTITION BY LIST (compliance_region);
CREATE TABLE compliance_cases_eu PARTITION OF compliance_cases FOR VALUES IN ('EU');
CREATE TABLE compliance_cases_uk PARTITION OF compliance_cases FOR VALUES IN ('UK');
CREATE TABLE compliance_cases_id PARTITION OF compliance_cases FOR VALUES IN ('ID');
CREATE INDEX compliance_cases_tenant ON compliance_cases (tenant_id, status, created_at, id);

CREATE TABLE sanctions_parties (
    list_name  text NOT NULL CHECK (length(list_name) BETWEEN 1 AND 100),
    entry_id   text NOT NULL CHECK (length(entry_id) BETWEEN 1 AND 100),
    party      jsonb NOT NULL,
    loaded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (list_name, entry_id)
);

-- A blocked transfer whose hold is still reserved is due work for the worker (it voids it).
DROP INDEX transfers_due;
CREATE INDEX transfers_due ON transfers (next_attempt_at)
    WHERE status IN ('processing', 'submitted', 'pending_rail', 'cancelled', 'blocked');

-- Admin actions are recorded in the hash-chained audit trail (0004) from now on.
DROP TABLE admin_actions;
