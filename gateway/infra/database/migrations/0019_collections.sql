-- Money in under mandates (SPEC §10): a customer's mandate with a provider, the collections
-- pulled under it, the collection runs (a SEPA run's pain.008), and the providers'
-- notifications as received.
--
-- Mandates, collections and runs hold a customer's bank details or what was debited from
-- them: regulated data, LIST-partitioned by `compliance_region` like transfers. Bank details
-- are sealed (AES-256-GCM, bound to the mandate's id); only a masked copy is in the clear.
-- A provider's reference is unique per provider within a region; notifications find their
-- object through (provider, provider_reference).
--
-- `collections` keeps `tenant_id`, `currency`, `amount_minor`, `end_to_end_id` and
-- `provider_reference` under these names: bank statement matching and reconciliation read
-- them.

CREATE TABLE mandates (
    compliance_region     text NOT NULL,
    id                    uuid NOT NULL,
    tenant_id             bigint NOT NULL,
    customer_id           uuid NOT NULL,
    provider              text NOT NULL CHECK (provider IN ('paywithaccount', 'sepa_dd', 'bacs_dd')),
    currency              text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    reference             text NOT NULL CHECK (length(reference) BETWEEN 1 AND 140),
    bank_details_sealed   text NOT NULL,
    bank_details_masked   jsonb NOT NULL,
    consent_accepted_at   timestamptz NOT NULL,
    consent_ip            text NOT NULL CHECK (length(consent_ip) <= 64),
    consent_user_agent    text NOT NULL CHECK (length(consent_user_agent) <= 512),
    status                text NOT NULL DEFAULT 'pending'
                          CHECK (status IN ('pending', 'active', 'failed', 'deactivated',
                                            'expired')),
    provider_reference    text CHECK (length(provider_reference) BETWEEN 1 AND 64),
    failure_code          text CHECK (length(failure_code) <= 64),
    failure_description   text CHECK (length(failure_description) <= 500),
    -- When the worker may next submit the mandate (a lease while it is being submitted).
    next_attempt_at       timestamptz NOT NULL DEFAULT now(),
    submitted_at          timestamptz,
    activated_at          timestamptz,
    last_collection_at    timestamptz,
    deactivated_at        timestamptz,
    -- Set once the provider was told of the deactivation (NULL while it is still to tell).
    provider_deactivated_at timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (compliance_region, id),
    UNIQUE (compliance_region, provider, provider_reference)
) PARTITION BY LIST (compliance_region);
CREATE TABLE mandates_eu PARTITION OF mandates FOR VALUES IN ('EU');
CREATE TABLE mandates_uk PARTITION OF mandates FOR VALUES IN ('UK');
CREATE TABLE mandates_id PARTITION OF mandates FOR VALUES IN ('ID');
CREATE INDEX mandates_tenant_created ON mandates (tenant_id, created_at, id);
CREATE INDEX mandates_to_submit ON mandates (next_attempt_at)
    WHERE status = 'pending' AND provider_reference IS NULL;
CREATE INDEX mandates_to_tell_deactivated ON mandates (deactivated_at)
    WHERE status = 'deactivated' AND provider_deactivated_at IS NULL;
CREATE INDEX mandates_open ON mandates (provider, created_at) WHERE status IN ('pending', 'active');

CREATE TABLE collection_runs (
    compliance_region text NOT NULL,
    id                uuid NOT NULL,
    tenant_id         bigint NOT NULL,
    provider          text NOT NULL,
    message_type      text,
    message           text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (compliance_region, id)
) PARTITION BY LIST (compliance_region);
CREATE TABLE collection_runs_eu PARTITION OF collection_runs FOR VALUES IN ('EU');
CREATE TABLE collection_runs_uk PARTITION OF collection_runs FOR VALUES IN ('UK');
CREATE TABLE collection_runs_id PARTITION OF collection_runs FOR VALUES IN ('ID');

CREATE TABLE collections (
    compliance_region   text NOT NULL,
    id                  uuid NOT NULL,
    tenant_id           bigint NOT NULL,
    mandate_id          uuid NOT NULL,
    provider            text NOT NULL,
    currency            text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    amount_minor        bigint NOT NULL CHECK (amount_minor > 0),
    reference           text NOT NULL CHECK (length(reference) BETWEEN 1 AND 140),
    end_to_end_id       text NOT NULL CHECK (length(end_to_end_id) BETWEEN 1 AND 35),
    collection_date     date NOT NULL,
    sequence_type       text CHECK (sequence_type IN ('first', 'recurring')),
    status              text NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'succeeded', 'failed', 'returned')),
    provider_reference  text CHECK (length(provider_reference) BETWEEN 1 AND 64),
    run_id              uuid,
    failure_code        text CHECK (length(failure_code) <= 64),
    failure_description text CHECK (length(failure_description) <= 500),
    -- A return's effect on the wallet: what came back and what was missing (a shortfall).
    returned_minor      bigint CHECK (returned_minor >= 0),
    shortfall_minor     bigint CHECK (shortfall_minor >= 0),
    next_attempt_at     timestamptz NOT NULL DEFAULT now(),
    submitted_at        timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (compliance_region, id),
    UNIQUE (compliance_region, end_to_end_id),
    UNIQUE (compliance_region, provider, provider_reference)
) PARTITION BY LIST (compliance_region);
CREATE TABLE collections_eu PARTITION OF collections FOR VALUES IN ('EU');
CREATE TABLE collections_uk PARTITION OF collections FOR VALUES IN ('UK');
CREATE TABLE collections_id PARTITION OF collections FOR VALUES IN ('ID');
CREATE INDEX collections_tenant_created ON collections (tenant_id, created_at, id);
CREATE INDEX collections_mandate ON collections (mandate_id, created_at);
CREATE INDEX collections_to_submit ON collections (next_attempt_at)
    WHERE status = 'pending' AND provider_reference IS NULL;
CREATE INDEX collections_end_to_end ON collections (end_to_end_id);

-- Every notification a provider sent (or a lookup found), verified before it was stored,
-- stored once by (provider, event_id). `status`: `pending` (matched, to apply), `applied`,
-- `unmatched` (no mandate or collection has its reference: an operations exception).
CREATE TABLE provider_notifications (
    id                 uuid PRIMARY KEY,
    provider           text NOT NULL,
    event_id           text NOT NULL CHECK (length(event_id) BETWEEN 1 AND 200),
    type               text NOT NULL,
    provider_reference text NOT NULL CHECK (length(provider_reference) BETWEEN 1 AND 64),
    amount_minor       bigint,
    currency           text,
    reason_code        text CHECK (length(reason_code) <= 16),
    synthetic          boolean NOT NULL DEFAULT false,
    body               text NOT NULL,
    status             text NOT NULL CHECK (status IN ('pending', 'applied', 'unmatched')),
    compliance_region  text,
    tenant_id          bigint,
    object_type        text CHECK (object_type IN ('mandate', 'collection')),
    object_id          uuid,
    outcome            text CHECK (length(outcome) <= 64),
    received_at        timestamptz NOT NULL DEFAULT now(),
    applied_at         timestamptz,
    UNIQUE (provider, event_id),
    CHECK ((status = 'unmatched') = (object_id IS NULL))
);
CREATE INDEX provider_notifications_to_apply ON provider_notifications (received_at)
    WHERE status = 'pending';
CREATE INDEX provider_notifications_unmatched ON provider_notifications (received_at)
    WHERE status = 'unmatched';
CREATE INDEX provider_notifications_object ON provider_notifications (object_id)
    WHERE object_id IS NOT NULL;
