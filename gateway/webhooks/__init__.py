"""Signed webhooks: tenants' endpoints, the event log, the delivery worker, retries and dead
letters.

Public: `records` (endpoints, the events outbox, deliveries), `routes`, `worker`,
`schedule` (the retry schedule), `signing` (Standard Webhooks signatures), `wire`, `errors`.
Private: `catalog`, `destinations`."""

__all__ = ["errors", "records", "routes", "schedule", "signing", "wire", "worker"]
