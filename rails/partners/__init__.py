"""Partner institutions that receive bucket money (SPEC §11), behind one interface.

Public: `partner` (the interface: orders, receipts, the two errors), `sandbox` (the partner
simulated in Redis, answering by reference), `http` (a partner reached by a signed POST to its
URL, through a resolver the caller passes in) and `resilient` (the timeout, retries and
circuit breaker every partner is sent through)."""

__all__ = ["http", "partner", "resilient", "sandbox"]
