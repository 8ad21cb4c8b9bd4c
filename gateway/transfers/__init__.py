"""Cross-border transfers: recipients, the lifecycle of SPEC §6 and the worker driving it.

Public: `service` (`Transfers`), `recipients` (`Recipients`), `admission` (the Redis
admission script), `orphan_admissions`, `records`, `rails_setup`, `routes`, `wire`, `errors`
and `worker` (the lifecycle)."""

__all__ = [
    "admission",
    "errors",
    "orphan_admissions",
    "rails_setup",
    "recipients",
    "records",
    "routes",
    "service",
    "wire",
    "worker",
]
