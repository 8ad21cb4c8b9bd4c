"""Collections: money in under direct-debit mandates (SPEC §10). A tenant's customer signs a
mandate with a provider; the tenant collects under it; the providers' notifications say
what became of each, and the worker applies them to the ledger and the rows exactly once.

Public: `service` (`Collections`), `notifications` (the providers' notifications in),
`applying` (notifications applied to the ledger and the rows), `sealed` (mandates' bank
details and runs' messages sealed at rest, and resealed after a key rotation), `setup` (the
domain built from settings), `routes`, `wire`, `errors` and `worker`. Private: `records`,
`views`."""

__all__ = [
    "applying",
    "errors",
    "notifications",
    "routes",
    "sealed",
    "service",
    "setup",
    "wire",
    "worker",
]
