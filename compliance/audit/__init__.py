"""The tamper-evident audit trail: the hash chain, its outbox for hot-path decisions,
verification and export."""
