"""Signed webhooks: tenants' endpoints, the event log, the delivery worker, retries and dead
letters.

Public: `records` (endpoints, the events outbox, deliveries), `routes`, `worker`,
`schedule` (the retry schedule), `signing` (Standard Webhooks signatures), `destinations`
(where a URL chosen by a tenant may point: partners apply the same policy), `wire`, `errors`.
Private: `catalog`."""

__all__ = [
    "destinations",
    "errors",
    "records",
    "routes",
    "schedule",
    "signing",
    "wire",
    "worker",
]
