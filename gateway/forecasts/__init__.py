"""The income forecast (SPEC §11): when a customer's next income is expected, how much, and
how sure that is, from their succeeded collections. A suggestion only: nothing here moves
money or starts a pull.

Public: `forecasting` (the pure method), `service` (`Forecasts`), `routes`, `wire`. Private:
`records`."""

__all__ = ["forecasting", "routes", "service", "wire"]
