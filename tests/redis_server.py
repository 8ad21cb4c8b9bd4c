"""Where the tests' Redis is: one address for the whole suite, so two runs on one machine
(two checkouts, two sessions) can point at separate servers and never flush each other's
databases. `KOVRA_TEST_REDIS_ADDRESS` (host:port) overrides the local default; each test
module that needs a database of its own names its number here through `redis_url`."""

from __future__ import annotations

import os

redis_address = os.environ.get("KOVRA_TEST_REDIS_ADDRESS", "127.0.0.1:6379")


def redis_url(database: int) -> str:
    """The URL of database `database` on the tests' Redis server."""
    return f"redis://{redis_address}/{database}"
