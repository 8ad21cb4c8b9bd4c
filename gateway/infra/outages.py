"""What Postgres and Redis raise while they are away: one list, for start-up (which waits for
them) and for requests (which answer 503 meanwhile).

A refused, reset or lost connection, a timeout, a host name that does not resolve yet, a
server shutting down, starting up or loading its data. Anything else (a wrong password or
database name, a refused statement) is a misconfiguration or a bug, and is not waited out.
"""

from __future__ import annotations

import socket

import asyncpg
import redis.exceptions

postgres_unavailable: tuple[type[Exception], ...] = (
    ConnectionError,  # Refused, reset, aborted.
    TimeoutError,
    socket.gaierror,  # A host name that does not resolve yet.
    asyncpg.PostgresConnectionError,  # The connection lost or rejected.
    asyncpg.OperatorInterventionError,  # Starting up, recovering, shutting down.
)
redis_unavailable: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,  # Also BusyLoadingError: a Redis loading its data.
    redis.exceptions.TimeoutError,
)
unavailable: tuple[type[Exception], ...] = postgres_unavailable + redis_unavailable
