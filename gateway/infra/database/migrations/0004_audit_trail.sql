-- The tamper-evident audit trail of SPEC §8: append-only and hash-chained.
--
-- Each record holds the SHA-256 of its canonical payload and the record_hash of the record
-- before it (32 zero bytes for the first); record_hash covers both, so rewriting any record
-- breaks verification at that record or the next (gateway/audit.py defines the hashes).
-- seq is assigned by the appender under an advisory lock as last seq + 1, never by a
-- sequence (a rolled-back nextval would leave a gap that looks exactly like a deleted row).
--
-- The triggers below refuse UPDATE, DELETE and TRUNCATE for every role, the application's
-- included. Only the table's owner (or a superuser) can get past them, by disabling or
-- dropping a trigger, and `kovra audit verify` then finds what was changed.

CREATE TABLE audit_records (
    seq           bigint PRIMARY KEY CHECK (seq >= 1),
    recorded_at   timestamptz NOT NULL,
    actor         text NOT NULL CHECK (length(actor) BETWEEN 1 AND 200),
    action        text NOT NULL CHECK (length(action) BETWEEN 1 AND 64),
    target        text NOT NULL CHECK (length(target) BETWEEN 1 AND 200),
    details       jsonb NOT NULL CHECK (jsonb_typeof(details) = 'object'),
    payload_hash  bytea NOT NULL CHECK (length(payload_hash) = 32),
    previous_hash bytea NOT NULL CHECK (length(previous_hash) = 32),
    record_hash   bytea NOT NULL CHECK (length(record_hash) = 32)
);
-- Exports select by time.
CREATE INDEX audit_records_recorded_at ON audit_records (recorded_at);

CREATE FUNCTION audit_records_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_records is append-only: % is refused', TG_OP
        USING HINT = 'audit records can only be appended (gateway/audit.py)';
END;
$$;

-- Statement-level, so even an UPDATE or DELETE that matches no row is refused.
CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION audit_records_refuse_change();
CREATE TRIGGER audit_records_no_delete BEFORE DELETE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION audit_records_refuse_change();
CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION audit_records_refuse_change();
