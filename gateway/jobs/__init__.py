"""The background work of `kovra worker`: the transfer lifecycle, the reconciler, retention
and webhook delivery.

Public: `worker` (starting every job, each given what it needs), `retention` (also
`kovra retention sweep`). Private: `reconciler`."""

__all__ = ["retention", "worker"]
