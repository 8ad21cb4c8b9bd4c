-- Retention (gateway/retention.py): events, their webhook deliveries and attempts, and the
-- durable copies of idempotent answers are written per request and deleted once they are
-- older than their retention. These indexes let each sweep find its oldest rows without
-- reading the table; finished deliveries only, since a pending one is never deleted.
CREATE INDEX events_created ON events (created_at);
CREATE INDEX webhook_deliveries_finished_created ON webhook_deliveries (created_at)
    WHERE status <> 'pending';
CREATE INDEX idempotency_records_created ON idempotency_records (created_at);
