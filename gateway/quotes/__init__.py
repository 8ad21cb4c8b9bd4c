"""FX quotes over HTTP: priced and locked by `fx`, served here.

Public: `service` (`Quotes`), `routes`, `wire`, `errors`."""

__all__ = ["errors", "routes", "service", "wire"]
