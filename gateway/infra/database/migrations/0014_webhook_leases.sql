-- A claimed attempt is leased to the worker that sends it. The lease was only implied by
-- next_attempt_at (pushed past the delivery timeout), which a claim could not tell from a
-- scheduled retry, so each worker bounded its in-flight attempts per endpoint by its own
-- count: with N workers an endpoint could receive N times the bound at once. The lease is
-- now explicit, so a claim counts every worker's attempts in flight for an endpoint.
ALTER TABLE webhook_deliveries ADD COLUMN leased_by uuid, ADD COLUMN leased_until timestamptz;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_lease_check
    CHECK ((leased_by IS NULL) = (leased_until IS NULL));
CREATE INDEX webhook_deliveries_leased ON webhook_deliveries (endpoint_id, leased_until)
    WHERE leased_until IS NOT NULL;
