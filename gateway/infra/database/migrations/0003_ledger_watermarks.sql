-- Watermarks over the ledger are TigerBeetle timestamps (nanoseconds), which timestamptz
-- (microseconds) cannot hold exactly.
ALTER TABLE reconciler_watermarks ADD COLUMN ledger_timestamp_ns bigint;
