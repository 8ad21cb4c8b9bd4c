"""The background work of `kovra worker`: the transfer lifecycle, the reconciler, retention
and webhook delivery."""
