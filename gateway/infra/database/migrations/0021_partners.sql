-- Partners (SPEC §11): the institutions a tenant's customers' bucket money is paid on to
-- (a savings bank, a landlord's agent, a pension fund). Configuration, not a money
-- movement: a plain table with the tenant's id, like webhook endpoints.
--
-- `adapter` says how the partner is reached: `sandbox` (simulated, answering by
-- `reference`) or `http` (signed POSTs to `url`, with the `whsec_` secret sealed at rest,
-- AES-256-GCM bound to the row: gateway/infra/sealing.py). `ledger_number` is the partner's
-- PARTNER_SETTLEMENT sub-account in the ledger, drawn once from a sequence and never reused.

CREATE SEQUENCE partner_ledger_numbers AS bigint MINVALUE 1 MAXVALUE 4294967295 NO CYCLE;

CREATE TABLE partners (
    id             uuid PRIMARY KEY,
    tenant_id      bigint NOT NULL REFERENCES tenants (id),
    kind           text NOT NULL CHECK (kind IN ('savings', 'rent', 'loan', 'tax', 'investment',
                                                 'subscription', 'pension')),
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    currency       text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    adapter        text NOT NULL CHECK (adapter IN ('sandbox', 'http')),
    reference      text NOT NULL CHECK (length(reference) BETWEEN 1 AND 128),
    url            text CHECK (length(url) BETWEEN 1 AND 2048),
    secret_sealed  text CHECK (secret_sealed LIKE 'sealed:v1:%'),
    ledger_number  bigint NOT NULL UNIQUE DEFAULT nextval('partner_ledger_numbers')
                   CHECK (ledger_number BETWEEN 1 AND 4294967295),
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    -- An http partner has a URL and a secret; a sandbox partner has neither.
    CHECK ((adapter = 'http') = (url IS NOT NULL)),
    CHECK ((adapter = 'http') = (secret_sealed IS NOT NULL))
);
ALTER SEQUENCE partner_ledger_numbers OWNED BY partners.ledger_number;
CREATE INDEX partners_tenant ON partners (tenant_id, created_at, id);
