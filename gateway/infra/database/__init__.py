"""Postgres: migrations (`migrate`), batched writes (`batch`) and the background scans'
watermarks (`watermarks`). Every module here is public."""

__all__ = ["batch", "migrate", "watermarks"]
