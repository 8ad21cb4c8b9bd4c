"""Postgres: migrations, the connection pool, batched writes and the repositories."""
