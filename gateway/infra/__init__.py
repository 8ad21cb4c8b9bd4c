"""The process's infrastructure: Postgres (`database`), what an outage of Postgres or Redis
raises (`outages`), Redis pipelining, sealed secrets, logs and metrics, and the garbage
collector's settings. Every module here is public."""

__all__ = [
    "database",
    "garbage_collection",
    "observability",
    "outages",
    "redis_pipelining",
    "sealing",
]
