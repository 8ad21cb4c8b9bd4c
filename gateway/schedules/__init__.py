"""Schedules (SPEC §11): a customer's pulls that start by themselves, on a cron expression in
a time zone or when the provider reports the mandate's account at or above a threshold; each
occurrence starts exactly one orchestration run, however many workers pass.

Public: `cron` (occurrences in a time zone), `service` (`Schedules`), `worker`, `routes`,
`wire`, `errors`. Private: `records`."""

__all__ = ["cron", "errors", "routes", "service", "wire", "worker"]
