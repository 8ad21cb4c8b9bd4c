"""An outage of Postgres or Redis answers `503 dependency_unavailable` with `Retry-After`,
whether the middleware (authentication, rate limits: Redis) or a handler (Postgres) meets
it, and the app serves again once the service is back: a client is told to wait, not that
Kovra is broken.

The in-process app reaches the real Postgres and Redis through TCP relays the test can cut
(every open connection dropped, new ones refused at once), as a restart of either would.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from loadtest.bench_gateway import provision_unthrottled_tenant
from tests import redis_server
from tests.postgres import in_process_app
from tests.tcp_relay import Relay

relay_database = 3  # This module's Redis database, emptied around it.


def _assert_outage(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "dependency_unavailable"
    assert response.headers["retry-after"] == "1"


async def test_an_outage_is_503_with_retry_after_and_service_resumes(
    empty_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = urlsplit(empty_database)
    postgres = Relay(database.netloc.rpartition("@")[2])
    redis = Relay(redis_server.redis_address)
    async with postgres.serving(), redis.serving():
        relayed_database = database._replace(netloc=f"postgres@127.0.0.1:{postgres.port}")
        async with in_process_app(
            relayed_database.geturl(),
            tmp_path,
            monkeypatch,
            redis_url=f"redis://127.0.0.1:{redis.port}/{relay_database}",
        ) as (_, client):
            key = await provision_unthrottled_tenant(client, deposits={"EUR": 1_000})
            headers = {"Authorization": f"Bearer {key}"}
            assert (await client.get("/v1/transfers", headers=headers)).status_code == 200

            redis.sever()  # Authentication and the rate limit live in Redis.
            _assert_outage(await client.get("/v1/transfers", headers=headers))
            redis.is_open = True

            postgres.sever()  # Listing transfers reads Postgres in the handler.
            _assert_outage(await client.get("/v1/transfers", headers=headers))
            postgres.is_open = True

            served = await client.get("/v1/transfers", headers=headers)
            assert served.status_code == 200, served.text
