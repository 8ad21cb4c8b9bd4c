"""Webhooks in Postgres: endpoints, the events outbox every domain writes, and deliveries.
Every module here is public."""

__all__ = ["deliveries", "endpoints", "events"]
