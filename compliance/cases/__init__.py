"""Compliance review cases: opened with a transfer held in review, decided by a person.

Public: `service` (`Cases`), `records` (the case row written with its transfer), `routes`,
`wire`, `errors`."""

__all__ = ["errors", "records", "routes", "service", "wire"]
