"""Batch payouts (SPEC §5): thousands of payouts in one request, FX netted per currency pair,
each item a transfer whose lifecycle the transfer worker runs.

Public: `service` (`Batches`, accepting a batch), `routes`, `wire`, `errors`, `worker` (the
batch watcher) and `repair`. Private: `parsing`, `pricing`, `records`, `screening`."""

__all__ = ["errors", "repair", "routes", "service", "wire", "worker"]
