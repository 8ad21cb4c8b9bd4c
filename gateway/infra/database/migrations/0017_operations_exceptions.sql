-- Operations exceptions: what Kovra could not settle on its own and leaves to a person,
-- never to a guess: a collection returned after its money left the wallet (a shortfall),
-- a bank statement entry matching no tenant (suspense), and later reconciliation breaks.
-- Each is recorded once: `dedupe_key` names the fact (e.g. the statement entry), so the
-- same file or notification seen twice records nothing more. Resolution is a note by a
-- person, audited; the row itself is never deleted.

CREATE TABLE operations_exceptions (
    id              uuid PRIMARY KEY,
    kind            text NOT NULL CHECK (kind ~ '^[a-z][a-z_]{0,63}$'),
    dedupe_key      text NOT NULL UNIQUE CHECK (length(dedupe_key) BETWEEN 1 AND 200),
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    tenant_id       bigint,
    currency        text CHECK (currency ~ '^[A-Z]{3}$'),
    amount_minor    bigint CHECK (amount_minor >= 0),
    object_type     text CHECK (length(object_type) <= 32),
    object_id       uuid,
    details         jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz,
    resolved_by     text CHECK (length(resolved_by) <= 200),
    resolution_note text CHECK (length(resolution_note) <= 2000),
    CHECK ((status = 'resolved') = (resolved_at IS NOT NULL))
);
CREATE INDEX operations_exceptions_open ON operations_exceptions (created_at, id)
    WHERE status = 'open';
CREATE INDEX operations_exceptions_recent ON operations_exceptions (created_at DESC, id DESC);
CREATE INDEX operations_exceptions_object ON operations_exceptions (object_id)
    WHERE object_id IS NOT NULL;
