-- One row type per batched insert (gateway/db/batch.py). A batch now travels as one array
-- of rows per table instead of one array per column: asyncpg encodes a row's fields without
-- the per-value container checks it makes on every element of a column array, and the rows
-- need no transposing into columns first. Each type lists exactly the columns and types of
-- its `BatchStatement`, in order; tests/gateway/db/test_batch.py checks that they agree.
CREATE TYPE idempotency_records_batch_row AS (
    tenant_id bigint,
    idempotency_key text,
    request_fingerprint bytea,
    response_status smallint,
    response_body bytea
);
CREATE TYPE events_batch_row AS (
    id uuid,
    tenant_id bigint,
    type text,
    object_id uuid,
    payload jsonb
);
CREATE TYPE holds_batch_row AS (
    id uuid,
    compliance_region text,
    tenant_id bigint,
    currency text,
    amount_minor bigint,
    timeout_seconds integer,
    reference text
);
CREATE TYPE deposits_batch_row AS (
    id uuid,
    compliance_region text,
    tenant_id bigint,
    currency text,
    amount_minor bigint,
    reference text
);
CREATE TYPE transfers_batch_row AS (
    id uuid,
    compliance_region text,
    tenant_id bigint,
    quote_id uuid,
    recipient_id uuid,
    reference text,
    source_currency text,
    source_amount_minor bigint,
    fee_minor bigint,
    target_currency text,
    target_amount_minor bigint,
    rate text,
    rail text,
    status text,
    created_at timestamptz,
    updated_at timestamptz
);
CREATE TYPE compliance_cases_batch_row AS (
    id uuid,
    compliance_region text,
    tenant_id bigint,
    transfer_id uuid,
    score integer,
    reasons jsonb
);
CREATE TYPE audit_outbox_batch_row AS (
    id uuid,
    actor text,
    action text,
    target text,
    details jsonb
);
