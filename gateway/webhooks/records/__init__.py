"""Webhooks in Postgres: endpoints, the events outbox and deliveries."""
