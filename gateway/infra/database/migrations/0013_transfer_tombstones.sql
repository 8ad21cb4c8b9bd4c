-- A payout reserves its funds in the ledger before its transfer row is written. When the
-- row never comes (the gateway died, or Postgres refused it), the reconciler voids the
-- reservation. It first writes an 'abandoned' row under the transfer's id, so the void and
-- a late write of the real row (a retry with the same Idempotency-Key) exclude each other
-- through the primary key: whichever is written first stands, and the other does nothing.
-- Tombstones are never shown to tenants and never driven by the worker.
ALTER TABLE transfers DROP CONSTRAINT transfers_status_check;
ALTER TABLE transfers ADD CONSTRAINT transfers_status_check CHECK (status IN (
    'processing', 'submitted', 'pending_rail', 'completed', 'in_review', 'blocked',
    'rail_rejected', 'refunded', 'cancelled', 'abandoned'));
