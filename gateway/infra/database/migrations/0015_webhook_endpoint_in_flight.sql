-- Each endpoint says how many attempts may be in flight to it at once, across every worker.
-- The bound was one constant (8) for all: a tenant whose receiver answers in 50 ms could get
-- at most 160 deliveries a second, well below the events of a tenant paying out a thousand
-- transfers a second, and a fragile receiver could not ask for fewer. The default keeps the
-- old bound; the ceiling matches gateway.webhooks.endpoints.in_flight_max_ceiling.
ALTER TABLE webhook_endpoints
    ADD COLUMN in_flight_max integer NOT NULL DEFAULT 8
        CHECK (in_flight_max BETWEEN 1 AND 64);
