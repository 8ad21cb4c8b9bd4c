-- Recipients, transfers and the ISO 20022 messages exchanged for them. All three hold
-- regulated data and are LIST-partitioned by compliance_region.

CREATE TABLE recipients (
    id                uuid NOT NULL,
    compliance_region text NOT NULL CHECK (compliance_region IN ('EU', 'UK', 'ID')),
    tenant_id         bigint NOT NULL,
    name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 140),
    country           text NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    currency          text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    bank_details      jsonb NOT NULL,
    status            text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'frozen')),
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (compliance_region, id)
) PARTITION BY LIST (compliance_region);
CREATE TABLE recipients_eu PARTITION OF recipients FOR VALUES IN ('EU');
CREATE TABLE recipients_uk PARTITION OF recipients FOR VALUES IN ('UK');
CREATE TABLE recipients_id PARTITION OF recipients FOR VALUES IN ('ID');
CREATE INDEX recipients_tenant ON recipients (tenant_id, created_at, id);

CREATE TABLE transfers (
    id                  uuid NOT NULL,
    compliance_region   text NOT NULL CHECK (compliance_region IN ('EU', 'UK', 'ID')),
    tenant_id           bigint NOT NULL,
    quote_id            uuid NOT NULL,
    recipient_id        uuid NOT NULL,
    reference           text NOT NULL CHECK (length(reference) BETWEEN 1 AND 140),
    source_currency     text NOT NULL CHECK (source_currency ~ '^[A-Z]{3}$'),
    source_amount_minor bigint NOT NULL CHECK (source_amount_minor > 0),
    fee_minor           bigint NOT NULL CHECK (fee_minor >= 0),
    target_currency     text NOT NULL CHECK (target_currency ~ '^[A-Z]{3}$'),
    target_amount_minor bigint NOT NULL CHECK (target_amount_minor > 0),
    rate                text NOT NULL CHECK (length(rate) <= 40),
    rail                text NOT NULL CHECK (length(rail) <= 32),
    status              text NOT NULL CHECK (status IN (
                            'processing', 'submitted', 'pending_rail', 'completed',
                            'in_review', 'blocked', 'rail_rejected', 'refunded', 'cancelled')),
    attempt             integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    next_attempt_at     timestamptz NOT NULL DEFAULT now(),
    failure_code        text CHECK (length(failure_code) <= 64),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (compliance_region, id)
) PARTITION BY LIST (compliance_region);
CREATE TABLE transfers_eu PARTITION OF transfers FOR VALUES IN ('EU');
CREATE TABLE transfers_uk PARTITION OF transfers FOR VALUES IN ('UK');
CREATE TABLE transfers_id PARTITION OF transfers FOR VALUES IN ('ID');
CREATE INDEX transfers_tenant ON transfers (tenant_id, created_at, id);
CREATE INDEX transfers_due ON transfers (next_attempt_at)
    WHERE status IN ('processing', 'submitted', 'pending_rail', 'cancelled');

CREATE TABLE transfer_messages (
    id                bigint GENERATED ALWAYS AS IDENTITY,
    compliance_region text NOT NULL CHECK (compliance_region IN ('EU', 'UK', 'ID')),
    transfer_id       uuid NOT NULL,
    tenant_id         bigint NOT NULL,
    message_type      text NOT NULL CHECK (message_type IN ('pacs.008', 'pacs.002')),
    direction         text NOT NULL CHECK (direction IN ('outbound', 'inbound')),
    attempt           integer NOT NULL,
    xml               text NOT NULL CHECK (length(xml) <= 262144),
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (compliance_region, id)
) PARTITION BY LIST (compliance_region);
CREATE TABLE transfer_messages_eu PARTITION OF transfer_messages FOR VALUES IN ('EU');
CREATE TABLE transfer_messages_uk PARTITION OF transfer_messages FOR VALUES IN ('UK');
CREATE TABLE transfer_messages_id PARTITION OF transfer_messages FOR VALUES IN ('ID');
CREATE INDEX transfer_messages_transfer ON transfer_messages (transfer_id, id);
