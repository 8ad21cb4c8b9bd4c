"""`kovra dev`: everything in one process on embedded defaults, ready for a first request.

Finds Postgres and Redis (the environment, then the local defaults, then embedded ones),
migrates, opens the ledger (the embedded engine journaling under `.kovra/` unless
TB_ADDRESSES is set), seeds a demo tenant with money and the platform with liquidity, prints
an API key and a curl example, then serves on :8000 with the worker running in-process.
Seeding is idempotent: a restart finds the same tenant and the same balances.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path

from gateway.dev.services import DevServices
from gateway.http.ids import object_id_for
from gateway.http.server import serve
from gateway.infra.database.migrate import migrate
from gateway.runtime import Runtime, open_runtime
from gateway.settings import load_settings
from gateway.tenancy.records import find_tenant_by_name, get_tenant

demo_tenant_name = "Demo Tenant"
demo_liquidity_minor = {"EUR": 10**11, "GBP": 10**11, "USD": 10**11, "IDR": 10**15}
demo_deposits_minor = {
    "EUR": 10_000_000,
    "GBP": 10_000_000,
    "USD": 10_000_000,
    "IDR": 100_000_000_000,
}


async def _seed(runtime: Runtime) -> tuple[int, str]:
    """The demo tenant (created once) with a fresh admin key, its deposits and liquidity."""
    tenant = await find_tenant_by_name(runtime.pool, demo_tenant_name)
    if tenant is None:
        tenant, secret = await runtime.tenancy.create_tenant_with_key(
            name=demo_tenant_name,
            tier="enterprise",
            compliance_region="EU",
            actor="kovra-dev",
        )
    else:
        # Postgres can outlive the data directory (the machine's own Postgres, a deleted
        # `.kovra`), and currencies can be enabled since: open whatever the ledger lacks.
        await runtime.ledger.open_tenant_accounts(tenant.id)
        _, secret = await runtime.tenancy.issue_api_key(
            tenant=tenant, role="admin", actor="kovra-dev"
        )
    for code, amount in demo_liquidity_minor.items():
        if code in runtime.settings.currencies:
            await runtime.ledger.fund_liquidity(
                funding_id=object_id_for(tenant_id=0, kind="demo-liquidity", idempotency_key=code),
                currency_code=code,
                amount_minor=amount,
            )
    for code, amount in demo_deposits_minor.items():
        if code in runtime.settings.currencies:
            await runtime.ledger.deposit(
                tenant_id=tenant.id,
                currency_code=code,
                amount_minor=amount,
                deposit_id=object_id_for(
                    tenant_id=tenant.id, kind="demo-deposit", idempotency_key=code
                ),
            )
    refreshed = await get_tenant(runtime.pool, tenant.id)
    return (refreshed or tenant).id, secret


async def _prepare(data_dir: Path) -> tuple[DevServices, int, str]:
    dev_services = DevServices(
        data_dir=data_dir,
        database_url=os.environ.get("DATABASE_URL") or None,
        redis_url=os.environ.get("REDIS_URL") or None,
    )
    await dev_services.__aenter__()
    try:
        os.environ["DATABASE_URL"] = dev_services.postgres.url
        os.environ["REDIS_URL"] = dev_services.redis.url
        await migrate(dev_services.postgres.url)
        runtime = await open_runtime(load_settings())
        try:
            tenant_id, secret = await _seed(runtime)
        finally:
            await runtime.close()  # Releases the journal for the server's process.
    except BaseException:
        await dev_services.__aexit__(None, None, None)
        raise
    return dev_services, tenant_id, secret


def run_dev(*, host: str, port: int) -> int:
    data_dir = Path(os.environ.get("KOVRA_DATA_DIR", ".kovra"))
    os.environ.setdefault("KOVRA_DATA_DIR", str(data_dir))
    os.environ.setdefault("KOVRA_ADMIN_TOKEN", "dev-admin-" + secrets.token_urlsafe(32))
    os.environ["KOVRA_IN_PROCESS_WORKER"] = "1"
    # The sandbox mandate providers send their notifications to this very server.
    reachable = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
    os.environ.setdefault("KOVRA_SANDBOX_PROVIDER_NOTIFY_URL", f"http://{reachable}:{port}")
    loop = asyncio.new_event_loop()
    dev_services, tenant_id, secret = loop.run_until_complete(_prepare(data_dir))
    try:
        _print_welcome(
            host=host, port=port, tenant_id=tenant_id, secret=secret, dev_services=dev_services
        )
        serve(host=host, port=port, workers=1)
    finally:
        loop.run_until_complete(dev_services.__aexit__(None, None, None))
        loop.close()
    return 0


def _print_welcome(
    *, host: str, port: int, tenant_id: int, secret: str, dev_services: DevServices
) -> None:
    base = f"http://{host}:{port}"
    ledger = (
        "TigerBeetle at TB_ADDRESSES"
        if os.environ.get("TB_ADDRESSES")
        else (f"embedded, journal {os.environ['KOVRA_DATA_DIR']}/ledger.journal")
    )
    print(  # noqa: T201 - the welcome is the point of `kovra dev`.
        f"""
Kovra dev is starting on {base}
  ledger:    {ledger}
  postgres:  {dev_services.postgres.source} ({dev_services.postgres.url})
  redis:     {dev_services.redis.source} ({dev_services.redis.url})
  admin:     Authorization: Bearer {os.environ["KOVRA_ADMIN_TOKEN"]}

Demo tenant {tenant_id}, API key (shown once): {secret}

  curl -s {base}/v1/balances -H 'Authorization: Bearer {secret}'
  curl -s -X POST {base}/v1/holds -H 'Authorization: Bearer {secret}' \\
       -H 'Content-Type: application/json' -H 'Idempotency-Key: first-hold' \\
       -d '{{"currency": "EUR", "amount": 2500, "reference": "order-42"}}'
""",
        flush=True,
    )
