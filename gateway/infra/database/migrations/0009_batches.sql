-- Batch payouts: the batch, its items' refusals, its pain.001 messages, and the batch's
-- items as ordinary transfers (a batch_id and the item's index on the transfer row).
-- All of it is regulated data, LIST-partitioned by compliance_region.

CREATE TABLE batches (
    id                uuid NOT NULL,
    compliance_region text NOT NULL CHECK (compliance_region IN ('EU', 'UK', 'ID')),
    tenant_id         bigint NOT NULL,
    -- 'abandoned' is the reconciler's tombstone for a batch whose ledger writes were never
    -- recorded: once it exists, the request that made them can no longer record the batch.
    status            text NOT NULL CHECK (status IN ('processing', 'completed', 'abandoned')),
    atomic            boolean NOT NULL,
    item_count        integer NOT NULL CHECK (item_count BETWEEN 0 AND 10000),
    accepted_count    integer NOT NULL CHECK (accepted_count BETWEEN 0 AND item_count),
    -- The pairs' conversion chains: currencies, locked rate and quote, totals in minor units.
    nettings          jsonb NOT NULL,
    messages_built_at timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    completed_at      timestamptz,
    PRIMARY KEY (compliance_region, id)
) PARTITION BY LIST (compliance_region);
CREATE TABLE batches_eu PARTITION OF batches FOR VALUES IN ('EU');
CREATE TABLE batches_uk PARTITION OF batches FOR VALUES IN ('UK');
CREATE TABLE batches_id PARTITION OF batches FOR VALUES IN ('ID');
CREATE INDEX batches_id_lookup ON batches (id);
CREATE INDEX batches_open ON batches (created_at) WHERE status = 'processing';
CREATE INDEX batches_unbuilt ON batches (created_at)
    WHERE messages_built_at IS NULL AND status <> 'abandoned';

ALTER TABLE transfers ADD COLUMN batch_id uuid;
ALTER TABLE transfers ADD COLUMN batch_item_index integer
    CHECK (batch_item_index BETWEEN 0 AND 9999);
ALTER TABLE transfers ADD CHECK ((batch_id IS NULL) = (batch_item_index IS NULL));
CREATE INDEX transfers_batch ON transfers (batch_id, batch_item_index)
    WHERE batch_id IS NOT NULL;

-- Items refused at acceptance (invalid, blocked, unfunded): the per-item errors.
CREATE TABLE batch_item_errors (
    compliance_region text NOT NULL CHECK (compliance_region IN ('EU', 'UK', 'ID')),
    batch_id          uuid NOT NULL,
    tenant_id         bigint NOT NULL,
    item_index        integer NOT NULL CHECK (item_index BETWEEN 0 AND 9999),
    code              text NOT NULL CHECK (length(code) <= 64),
    field             text CHECK (length(field) <= 64),
    message           text NOT NULL CHECK (length(message) <= 500),
    reference         text CHECK (length(reference) <= 140),
    PRIMARY KEY (compliance_region, batch_id, item_index)
) PARTITION BY LIST (compliance_region);
CREATE TABLE batch_item_errors_eu PARTITION OF batch_item_errors FOR VALUES IN ('EU');
CREATE TABLE batch_item_errors_uk PARTITION OF batch_item_errors FOR VALUES IN ('UK');
CREATE TABLE batch_item_errors_id PARTITION OF batch_item_errors FOR VALUES IN ('ID');

-- One pain.001 per rail per batch.
CREATE TABLE batch_messages (
    compliance_region      text NOT NULL CHECK (compliance_region IN ('EU', 'UK', 'ID')),
    batch_id               uuid NOT NULL,
    tenant_id              bigint NOT NULL,
    rail                   text NOT NULL CHECK (length(rail) <= 32),
    currency               text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    message_type           text NOT NULL CHECK (message_type = 'pain.001'),
    number_of_transactions integer NOT NULL CHECK (number_of_transactions BETWEEN 1 AND 10000),
    control_sum_minor      numeric(40, 0) NOT NULL CHECK (control_sum_minor > 0),
    xml                    text NOT NULL CHECK (length(xml) <= 67108864),
    created_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (compliance_region, batch_id, rail)
) PARTITION BY LIST (compliance_region);
CREATE TABLE batch_messages_eu PARTITION OF batch_messages FOR VALUES IN ('EU');
CREATE TABLE batch_messages_uk PARTITION OF batch_messages FOR VALUES IN ('UK');
CREATE TABLE batch_messages_id PARTITION OF batch_messages FOR VALUES IN ('ID');
