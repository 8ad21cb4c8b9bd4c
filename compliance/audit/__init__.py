"""The tamper-evident audit trail: the hash chain (`chain`: append, the canonical form, the
hashes), its outbox for hot-path decisions (`outbox`), and reading it back (`verify`,
`export`)."""
