-- Customers: a tenant's end users (SPEC §10), whose mandates collect from their bank
-- accounts. Regulated data, LIST-partitioned by the tenant's compliance_region like
-- transfers. Personal data is never stored in the clear: the name, the email and the
-- tenant's own external id are sealed (AES-256-GCM, gateway/infra/sealing.py), each bound to
-- its row and column, and the two a tenant may look a customer up by (external id, email)
-- carry a keyed blind index (HMAC-SHA256) computed under `index_key_id`, so the lookup is
-- an equality on the index and a dump shows neither value.

CREATE TABLE customers (
    id                 uuid NOT NULL,
    compliance_region  text NOT NULL CHECK (compliance_region IN ('EU', 'UK', 'ID')),
    tenant_id          bigint NOT NULL,
    name_sealed        text NOT NULL CHECK (name_sealed LIKE 'sealed:v1:%'),
    email_sealed       text CHECK (email_sealed LIKE 'sealed:v1:%'),
    external_id_sealed text CHECK (external_id_sealed LIKE 'sealed:v1:%'),
    country            text NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    email_index        bytea CHECK (length(email_index) = 32),
    external_id_index  bytea CHECK (length(external_id_index) = 32),
    index_key_id       text NOT NULL CHECK (index_key_id ~ '^[0-9a-f]{16}$'),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (compliance_region, id),
    CHECK ((email_sealed IS NULL) = (email_index IS NULL)),
    CHECK ((external_id_sealed IS NULL) = (external_id_index IS NULL))
) PARTITION BY LIST (compliance_region);
CREATE TABLE customers_eu PARTITION OF customers FOR VALUES IN ('EU');
CREATE TABLE customers_uk PARTITION OF customers FOR VALUES IN ('UK');
CREATE TABLE customers_id PARTITION OF customers FOR VALUES IN ('ID');
-- A tenant lives in one region, so an external id is unique per tenant.
CREATE UNIQUE INDEX customers_external_id
    ON customers (compliance_region, tenant_id, external_id_index);
CREATE INDEX customers_email ON customers (tenant_id, email_index) WHERE email_index IS NOT NULL;
CREATE INDEX customers_tenant ON customers (tenant_id, created_at, id);
-- Other domains (mandates) name a customer by id alone.
CREATE INDEX customers_by_id ON customers (id);
