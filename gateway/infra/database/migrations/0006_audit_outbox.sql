-- Compliance decisions made on the hot path (every transfer is approved, reviewed or
-- blocked) are written here in the same transaction as the transfer row, then moved into
-- the hash chain of audit_records in batches by `gateway.audit_outbox`. A crash between
-- the two writes leaves the decision here, where the next drain picks it up.

CREATE TABLE audit_outbox (
    id          uuid PRIMARY KEY,
    actor       text NOT NULL CHECK (length(actor) BETWEEN 1 AND 200),
    action      text NOT NULL CHECK (length(action) BETWEEN 1 AND 64),
    target      text NOT NULL CHECK (length(target) BETWEEN 1 AND 200),
    details     jsonb NOT NULL CHECK (jsonb_typeof(details) = 'object'),
    decided_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX audit_outbox_order ON audit_outbox (decided_at, id);
