-- Webhooks: each tenant's endpoints, one delivery per (event, endpoint), and every attempt.
--
-- Deliveries are created by a trigger on `events`, in the same transaction as the event and
-- therefore as the state change that wrote it: an event that exists has its deliveries, and
-- nothing depends on a process staying alive between the two writes. The trigger is per
-- statement over the inserted rows, so a batch of events fans out in one INSERT.

CREATE TABLE webhook_endpoints (
    id                          uuid PRIMARY KEY,
    tenant_id                   bigint NOT NULL REFERENCES tenants (id),
    url                         text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    description                 text CHECK (length(description) <= 200),
    enabled_events              text[] NOT NULL
                                CHECK (cardinality(enabled_events) BETWEEN 1 AND 32),
    secret                      text NOT NULL CHECK (secret LIKE 'whsec\_%'),
    -- During a rotation the old secret keeps signing (a second signature) until it expires.
    previous_secret             text CHECK (previous_secret LIKE 'whsec\_%'),
    previous_secret_expires_at  timestamptz,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    deleted_at                  timestamptz,
    CHECK ((previous_secret IS NULL) = (previous_secret_expires_at IS NULL))
);
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id, created_at, id)
    WHERE deleted_at IS NULL;

-- One row per (event, endpoint). Its id is the stable `webhook-id` of every attempt, so a
-- receiver can drop duplicates of at-least-once delivery. `attempt` counts attempts ever
-- claimed and only grows: a claim increments it, and an outcome is written only for the
-- attempt it belongs to, so a worker whose lease ran out cannot overwrite a newer attempt.
-- A redelivery starts a new round at `round_base` = `attempt`.
CREATE TABLE webhook_deliveries (
    id                uuid PRIMARY KEY,
    event_id          uuid NOT NULL REFERENCES events (id),
    endpoint_id       uuid NOT NULL REFERENCES webhook_endpoints (id),
    tenant_id         bigint NOT NULL,
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'delivered', 'dead', 'cancelled')),
    attempt           integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    round_base        integer NOT NULL DEFAULT 0 CHECK (round_base BETWEEN 0 AND attempt),
    next_attempt_at   timestamptz,
    last_attempt_at   timestamptz,
    last_status_code  integer,
    last_error        text CHECK (length(last_error) <= 500),
    delivered_at      timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (event_id, endpoint_id),
    CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL))
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id)
    WHERE status = 'pending';

CREATE TABLE webhook_attempts (
    delivery_id   uuid NOT NULL REFERENCES webhook_deliveries (id),
    attempt       integer NOT NULL CHECK (attempt >= 1),
    outcome       text NOT NULL CHECK (length(outcome) <= 32),
    status_code   integer,
    error         text CHECK (length(error) <= 500),
    duration_ms   integer NOT NULL CHECK (duration_ms >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (delivery_id, attempt)
);

-- The delivery id is md5 of "event:endpoint" read as a uuid; gateway/webhooks/store.py
-- computes the same value, so both sides name a delivery alike.
CREATE FUNCTION webhook_fan_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (id, event_id, endpoint_id, tenant_id, next_attempt_at)
    SELECT md5(e.id::text || ':' || w.id::text)::uuid, e.id, w.id, e.tenant_id, now()
      FROM inserted_events e
      JOIN webhook_endpoints w ON w.tenant_id = e.tenant_id AND w.deleted_at IS NULL
     WHERE w.enabled_events && ARRAY['*', e.type, split_part(e.type, '.', 1) || '.*']
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_fan_out_to_webhooks
    AFTER INSERT ON events
    REFERENCING NEW TABLE AS inserted_events
    FOR EACH STATEMENT EXECUTE FUNCTION webhook_fan_out();

-- GET /v1/events filters by type and pages by (created_at, id).
CREATE INDEX events_tenant_type_created ON events (tenant_id, type, created_at, id);
