"""`kovra dev`: everything in one process on embedded defaults.

Public: `run` (`run_dev`). Private: `services` (finding or starting Postgres and Redis)."""

__all__ = ["run"]
