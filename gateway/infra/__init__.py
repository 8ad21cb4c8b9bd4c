"""The process's infrastructure: Postgres (`database`), Redis pipelining, sealed secrets, logs
and metrics, and the garbage collector's settings. Every module here is public."""

__all__ = ["database", "garbage_collection", "observability", "redis_pipelining", "sealing"]
