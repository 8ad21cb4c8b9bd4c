"""The tamper-evident audit trail: the hash chain, its outbox for hot-path decisions,
verification and export.

Public: `chain` (appending, the canonical form, `record_admin_action`), `outbox` (records
written beside a payment and chained later), `verify` (`kovra audit verify`) and `export`
(a file with its SHA-256 and row count)."""

__all__ = ["chain", "export", "outbox", "verify"]
