"""Orchestration runs (SPEC §11): a pull under a mandate, collected, split by the customer's
rules into buckets in one ledger chain, and paid on to partners, every step recorded and
resumable after a crash.

Public: `service` (`Orchestrations`, `PullIntent`, `MandateFacts`), `worker` (the run's
passes), `routes`, `wire`, `errors`. Private: `records`, `views`."""

__all__ = ["errors", "routes", "service", "wire", "worker"]
