"""Customers: a tenant's end users (SPEC §10), whose personal data is sealed at rest and
found by keyed blind indexes; mandates collect from their bank accounts.

Public: `service` (`Customers`, `CustomerRecord`), `routes`, `wire`, `errors`. Private:
`records`."""

__all__ = ["errors", "routes", "service", "wire"]
