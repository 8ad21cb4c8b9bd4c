"""The process's infrastructure: Postgres, Redis pipelining, sealing, logs and metrics."""
