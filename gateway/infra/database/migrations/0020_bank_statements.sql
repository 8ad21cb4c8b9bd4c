-- Bank statements in (SPEC §10): the camt.053 statements and camt.054 credit/debit
-- notifications of the platform's settlement accounts, and every booked entry they carry.
--
-- A statement (one Stmt or Ntfctn of a file) is recorded once, by its account and message,
-- and once by the file it came in. An entry is recorded once by its account and the bank's
-- reference for it (`entry_key`), whichever file brought it first: a notification and the
-- statement that repeats its entry share one `bank_entries` row, and so one ledger move.
-- `bank_statement_entries` lists, in order, the entries each statement carried.

CREATE TABLE bank_statements (
    id                   uuid PRIMARY KEY,
    kind                 text NOT NULL CHECK (kind IN ('camt.053', 'camt.054')),
    message_type         text NOT NULL CHECK (length(message_type) <= 32),
    message_id           text NOT NULL CHECK (length(message_id) BETWEEN 1 AND 35),
    report_id            text NOT NULL CHECK (length(report_id) BETWEEN 1 AND 35),
    account              text NOT NULL CHECK (length(account) BETWEEN 1 AND 34),
    currency             text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    file_sha256          bytea NOT NULL CHECK (length(file_sha256) = 32),
    bank_created_at      timestamptz NOT NULL,
    -- Signed balances in minor units (a debit balance is negative); camt.054 has none.
    opening_balance_minor bigint,
    opening_balance_date  date,
    closing_balance_minor bigint,
    closing_balance_date  date,
    entry_count          integer NOT NULL CHECK (entry_count >= 0),
    not_booked_count     integer NOT NULL CHECK (not_booked_count >= 0),
    -- 'processing' until every entry it brought has been settled (moved or left alone).
    status               text NOT NULL CHECK (status IN ('processing', 'processed')),
    ingested_by          text NOT NULL CHECK (length(ingested_by) <= 200),
    created_at           timestamptz NOT NULL DEFAULT now(),
    processed_at         timestamptz,
    UNIQUE (account, message_id, report_id),
    UNIQUE (file_sha256, report_id)
);
CREATE INDEX bank_statements_recent ON bank_statements (created_at, id);

CREATE TABLE bank_entries (
    -- Derived from the account and the entry key, so it is the same whichever file brings
    -- the entry; the ledger's transfer ids derive from it in turn.
    id                 uuid PRIMARY KEY,
    statement_id       uuid NOT NULL REFERENCES bank_statements (id),
    account            text NOT NULL CHECK (length(account) BETWEEN 1 AND 34),
    entry_key          text NOT NULL CHECK (length(entry_key) BETWEEN 1 AND 80),
    key_source         text NOT NULL CHECK (key_source IN ('AcctSvcrRef', 'NtryRef', 'digest')),
    currency           text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    amount_minor       bigint NOT NULL CHECK (amount_minor > 0),
    direction          text NOT NULL CHECK (direction IN ('credit', 'debit')),
    booking_date       date,
    value_date         date,
    remittance         text CHECK (length(remittance) <= 2000),
    creditor_reference text CHECK (length(creditor_reference) <= 35),
    end_to_end_id      text CHECK (length(end_to_end_id) <= 35),
    -- What became of the entry. `pending_credit` and `pending_suspense` are decided and not
    -- yet moved in the ledger (a crash in between is completed by ingesting again);
    -- `credited`, `suspense` and `released` moved money; `collection` and `debit` move none.
    status             text NOT NULL CHECK (status IN ('pending_credit', 'pending_suspense',
                           'credited', 'suspense', 'released', 'collection', 'debit')),
    -- Why an entry went to suspense: no_reference, unreadable_reference (a structured
    -- reference that is no funding reference), unknown_reference (no such tenant),
    -- ambiguous_reference (several tenants named), wallet_not_open.
    suspense_reason    text CHECK (length(suspense_reason) <= 32),
    tenant_id          bigint,
    created_at         timestamptz NOT NULL DEFAULT now(),
    settled_at         timestamptz,
    UNIQUE (account, entry_key),
    CHECK ((status IN ('pending_credit', 'credited', 'released')) <= (tenant_id IS NOT NULL))
);
CREATE INDEX bank_entries_pending ON bank_entries (statement_id)
    WHERE status IN ('pending_credit', 'pending_suspense');
CREATE INDEX bank_entries_tenant ON bank_entries (tenant_id, created_at)
    WHERE tenant_id IS NOT NULL;

CREATE TABLE bank_statement_entries (
    statement_id uuid NOT NULL REFERENCES bank_statements (id),
    position     integer NOT NULL CHECK (position >= 0),
    entry_id     uuid NOT NULL REFERENCES bank_entries (id),
    PRIMARY KEY (statement_id, position)
);
CREATE INDEX bank_statement_entries_entry ON bank_statement_entries (entry_id);
