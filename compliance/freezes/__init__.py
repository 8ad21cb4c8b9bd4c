"""Freezing a tenant or a recipient: every transfer of a frozen party stops.

Public: `service` (`Freezes`, `ensure_active`), `routes`, `wire`, `errors`."""

__all__ = ["errors", "routes", "service", "wire"]
