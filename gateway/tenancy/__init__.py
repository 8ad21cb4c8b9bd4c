"""Tenants, their API keys and their pricing and limit policies: the admin plane's own domain.

Public: `service` (`Tenancy`), `records` (tenants and keys, also read by authentication),
`pricing_cache` (each tenant's terms, read by the payment path), `routes`, `wire`,
`errors`."""

__all__ = ["errors", "pricing_cache", "records", "routes", "service", "wire"]
