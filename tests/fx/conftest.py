"""Redis for FX tests: a private key namespace per test, deleted after."""

from __future__ import annotations

from tests.gateway.conftest import namespace, redis_client

__all__ = ["namespace", "redis_client"]
