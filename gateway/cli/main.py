"""The `kovra` command: run the gateway, the worker, migrations, and operator tasks.

Operator commands (tenant, api-key, liquidity) act directly on Postgres, Redis and the
ledger with the same code as the admin API, and record their admin actions too.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import getpass
import os
import secrets
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
import uvloop

from compliance.sanctions.lists import SanctionsListError, load_ofac, load_simple_csv
from gateway.http.server import serve
from gateway.runtime import Services, open_services
from gateway.settings import Settings, SettingsError, load_settings
from gateway.tenancy.records import tenant_statuses
from ledger.embedded.journal import JournalInUse

port_default = 8000
workers_max = 64


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as error:
        print(error, file=sys.stderr)
        raise SystemExit(2) from None


def _page_limit(text: str) -> int:
    """A page size within the admin plane's bound, or argparse's usage error."""
    from gateway.tenancy.records import admin_page_max  # noqa: PLC0415

    if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= admin_page_max:
        raise argparse.ArgumentTypeError(f"must be between 1 and {admin_page_max}")
    return int(text)


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


async def _with_services(settings: Settings, action: Callable[[Services], Awaitable[int]]) -> int:
    try:
        services = await open_services(settings)
    except JournalInUse:
        print(
            "the embedded ledger is in use by a running Kovra: use the admin API "
            "(/admin/v1) instead, or share the ledger with TB_ADDRESSES or KOVRA_LEDGER_ADDRESS",
            file=sys.stderr,
        )
        return 1
    try:
        return await action(services)
    finally:
        await services.close()


# --------------------------------------------------------------------------------------
# Serving.


def command_serve(arguments: argparse.Namespace) -> int:
    settings = _settings()
    if arguments.workers > 1 and not settings.ledger_is_shared:
        print(
            "kovra serve --workers N>1 needs a ledger every worker can share: set TB_ADDRESSES "
            "(a TigerBeetle cluster) or KOVRA_LEDGER_ADDRESS (kovra ledger-server). The "
            "embedded ledger lives in one process.",
            file=sys.stderr,
        )
        return 2
    serve(host=arguments.host, port=arguments.port, workers=arguments.workers)
    return 0


def command_worker(arguments: argparse.Namespace) -> int:
    # Imported here, like every import below that reaches gateway.infra.observability:
    # prometheus-client must not load before `serve` sets up multiprocess metrics.
    from prometheus_client import start_http_server  # noqa: PLC0415

    from gateway.infra.garbage_collection import tune_garbage_collection  # noqa: PLC0415
    from gateway.infra.observability import configure_logging  # noqa: PLC0415
    from gateway.jobs.worker import run_workers  # noqa: PLC0415
    from gateway.transfers.rails_setup import NoRailConfigured  # noqa: PLC0415

    settings = _settings()
    configure_logging(settings.log_level)
    if arguments.metrics_port:
        # The worker's own metrics (webhook deliveries, queue depth): it serves no HTTP API.
        start_http_server(arguments.metrics_port, addr=arguments.metrics_host)

    async def run(services: Services) -> int:
        tune_garbage_collection()  # Start-up is done: what is alive now lives for good.
        try:
            await run_workers(services)
        except NoRailConfigured as error:
            print(error, file=sys.stderr)
            return 2
        return 0

    # uvloop, as the gateway's granian workers: the worker's time goes mostly to socket I/O
    # (Postgres, the ledger, the rails), which uvloop's transports do with less Python.
    return uvloop.run(_with_services(settings, run))


def command_migrate(_: argparse.Namespace) -> int:
    from gateway.infra.database.migrate import migrate  # noqa: PLC0415
    from gateway.runtime import default_database_url  # noqa: PLC0415

    settings = _settings()
    applied = asyncio.run(migrate(settings.database_url or default_database_url))
    print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")
    return 0


def command_dev(arguments: argparse.Namespace) -> int:
    from gateway.dev.run import run_dev  # noqa: PLC0415

    return run_dev(host=arguments.host, port=arguments.port)


def command_ledger_server(arguments: argparse.Namespace) -> int:
    from ledger.remote.server import main as ledger_server_main  # noqa: PLC0415

    argv = ["--address", arguments.address]
    if arguments.journal:
        argv += ["--journal", arguments.journal]
    return ledger_server_main(argv)


# --------------------------------------------------------------------------------------
# Operator commands.


def command_tenant_create(arguments: argparse.Namespace) -> int:
    from gateway.tenancy.routes import tenant_view  # noqa: PLC0415
    from gateway.tenancy.service import create_tenant_with_key  # noqa: PLC0415

    async def run(services: Services) -> int:
        tenant, secret = await create_tenant_with_key(
            services,
            name=arguments.name,
            tier=arguments.tier,
            compliance_region=arguments.region,
            actor=_actor(),
        )
        if arguments.json:
            print(msgspec.json.encode({"tenant_id": tenant.id, "api_key": secret}).decode())
        else:
            view = tenant_view(tenant)
            print(f"tenant {view.id} ({view.name}, {view.tier}, {view.compliance_region})")
            print(f"api key (shown once): {secret}")
        return 0

    return asyncio.run(_with_services(_settings(), run))


def command_tenant_list(arguments: argparse.Namespace) -> int:
    from gateway.tenancy.records import list_tenants  # noqa: PLC0415
    from gateway.tenancy.routes import tenant_view  # noqa: PLC0415

    async def run(services: Services) -> int:
        tenants = await list_tenants(
            services.pool, limit=arguments.limit, after_id=arguments.after, status=arguments.status
        )
        if arguments.json:
            print(msgspec.json.encode([tenant_view(t) for t in tenants]).decode())
            return 0
        for tenant in tenants:
            print(
                f"{tenant.id:>19}  {tenant.status:<6}  {tenant.limit_policy:<10}  "
                f"{tenant.compliance_region}  {tenant.name}"
            )
        if len(tenants) == arguments.limit:
            print(f"more: --after {tenants[-1].id}", file=sys.stderr)
        return 0

    return asyncio.run(_with_services(_settings(), run))


def command_api_key(arguments: argparse.Namespace) -> int:
    from gateway.infra.database.records import record_admin_action  # noqa: PLC0415
    from gateway.tenancy.records import (  # noqa: PLC0415
        admin_page_max,
        get_tenant,
        list_api_keys,
        revoke_api_key,
    )
    from gateway.tenancy.routes import api_key_view  # noqa: PLC0415
    from gateway.tenancy.service import issue_api_key  # noqa: PLC0415

    async def run(services: Services) -> int:
        pool = services.pool
        tenant = await get_tenant(pool, arguments.tenant)
        if tenant is None:
            print(f"no tenant {arguments.tenant}", file=sys.stderr)
            return 1
        if arguments.action == "list":
            after: int | None = None
            while keys := await list_api_keys(
                pool, tenant_id=tenant.id, limit=admin_page_max, after_id=after
            ):
                for key in keys:
                    print(msgspec.json.encode(api_key_view(key)).decode())
                after = keys[-1].id
            return 0
        if arguments.action == "create":
            key, secret = await issue_api_key(
                services, tenant=tenant, role=arguments.role, actor=_actor()
            )
            print(msgspec.json.encode({"id": key.id, "role": key.role, "api_key": secret}).decode())
            return 0
        await record_admin_action(
            pool,
            actor=_actor(),
            action="api_key.revoke",
            target=f"api_key:{arguments.key_id}",
            details={"tenant_id": tenant.id},
        )
        revoked = await revoke_api_key(pool, key_id=arguments.key_id, tenant_id=tenant.id)
        if revoked is None:
            print(f"no API key {arguments.key_id} for tenant {tenant.id}", file=sys.stderr)
            return 1
        await services.limiter.revoke_api_key(key_hash_hex=revoked.key_hash.hex())
        print(f"revoked API key {revoked.id}")
        return 0

    return asyncio.run(_with_services(_settings(), run))


def command_liquidity_fund(arguments: argparse.Namespace) -> int:
    from gateway.infra.database.records import record_admin_action  # noqa: PLC0415
    from ledger.transfers import new_object_id  # noqa: PLC0415

    async def run(services: Services) -> int:
        funding_id = new_object_id()
        await record_admin_action(
            services.pool,
            actor=_actor(),
            action="liquidity.fund",
            target=f"currency:{arguments.currency.upper()}",
            details={"amount": arguments.amount_minor, "funding_id": funding_id},
        )
        await services.ledger.fund_liquidity(
            funding_id=funding_id,
            currency_code=arguments.currency,
            amount_minor=arguments.amount_minor,
        )
        print(f"funded {arguments.amount_minor} minor units of {arguments.currency.upper()}")
        return 0

    return asyncio.run(_with_services(_settings(), run))


def command_sanctions_load(arguments: argparse.Namespace) -> int:
    from compliance.setup import store_list  # noqa: PLC0415
    from gateway.infra.database.records import record_admin_action  # noqa: PLC0415

    path = Path(arguments.path)
    if arguments.format == "ofac" and not path.is_dir():
        print("--format ofac takes the folder holding sdn.csv and alt.csv", file=sys.stderr)
        return 2
    loader = load_ofac if arguments.format == "ofac" else load_simple_csv
    try:
        parties = loader(path)
    except SanctionsListError as error:
        print(error, file=sys.stderr)
        return 1

    async def run(services: Services) -> int:
        count = await store_list(services.pool, parties)
        await record_admin_action(
            services.pool,
            actor=_actor(),
            action="sanctions.load",
            target=f"sanctions:{arguments.format}",
            details={"path": str(path), "entries": count},
        )
        print(
            f"loaded {count} entries from {path}; running processes pick them up within "
            "KOVRA_SANCTIONS_REFRESH_SECONDS"
        )
        return 0

    return asyncio.run(_with_services(_settings(), run))


def command_audit(arguments: argparse.Namespace) -> int:
    from compliance.audit import chain as audit  # noqa: PLC0415

    async def run(services: Services) -> int:
        if arguments.audit_command == "verify":
            result = await audit.verify(services.pool)
            print(msgspec.json.encode(result).decode())
            return 0 if result.ok else 1
        try:
            exported = await audit.export(
                services.pool, start=arguments.start, end=arguments.end, path=Path(arguments.output)
            )
        except audit.AuditInputError as error:
            print(error, file=sys.stderr)
            return 2
        print(msgspec.json.encode(exported).decode())
        return 0

    return asyncio.run(_with_services(_settings(), run))


def command_retention_sweep(_: argparse.Namespace) -> int:
    from gateway.jobs import retention  # noqa: PLC0415

    settings = _settings()

    async def run(services: Services) -> int:
        deleted = {"deliveries": 0, "events": 0, "idempotency_records": 0}
        while True:
            swept = await retention.sweep(services.pool, settings.retention)
            for table, count in msgspec.structs.asdict(swept).items():
                deleted[table] += count
            if max(msgspec.structs.astuple(swept)) < retention.delete_batch_size_max:
                break
        print(msgspec.json.encode(deleted).decode())
        return 0

    return asyncio.run(_with_services(settings, run))


def command_secrets(arguments: argparse.Namespace) -> int:
    if arguments.secrets_command == "new-key":
        print(secrets.token_urlsafe(48))
        return 0
    from gateway.infra.sealing import SecretUnreadable  # noqa: PLC0415
    from gateway.webhooks.records.endpoints import reseal_secrets  # noqa: PLC0415

    async def run(services: Services) -> int:
        try:
            changed = await reseal_secrets(services.pool, services.secret_box)
        except SecretUnreadable as error:
            print(f"nothing was resealed: {error}", file=sys.stderr)
            return 1
        key_id = services.secret_box.current_key_id
        print(msgspec.json.encode({"resealed": changed, "key_id": key_id}).decode())
        return 0

    return asyncio.run(_with_services(_settings(), run))


def command_freeze(arguments: argparse.Namespace) -> int:
    from compliance.freezes.service import set_recipient_freeze, set_tenant_freeze  # noqa: PLC0415
    from gateway.http.ids import decode_id  # noqa: PLC0415
    from gateway.http.problems import ProblemError  # noqa: PLC0415

    status = "active" if arguments.unfreeze else "frozen"
    if arguments.kind == "recipient" and arguments.tenant <= 0:
        print("freeze recipient needs --tenant, the recipient's tenant id", file=sys.stderr)
        return 2

    async def run(services: Services) -> int:
        if arguments.kind == "tenant":
            found = (
                await set_tenant_freeze(
                    services, tenant_id=int(arguments.id), status=status, actor=_actor()
                )
                is not None
            )
        else:
            try:
                recipient_id = decode_id("rcp", arguments.id)
            except ProblemError:
                print(f"{arguments.id!r} is not a recipient id", file=sys.stderr)
                return 2
            found = await set_recipient_freeze(
                services,
                tenant_id=arguments.tenant,
                recipient_id=recipient_id,
                status=status,
                actor=_actor(),
            )
        if not found:
            print(f"no {arguments.kind} {arguments.id}", file=sys.stderr)
            return 1
        print(f"{arguments.kind} {arguments.id} is {status}")
        return 0

    return asyncio.run(_with_services(_settings(), run))


def _timestamp(text: str) -> datetime.datetime:
    moment = datetime.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


# --------------------------------------------------------------------------------------
# Argument parsing.


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kovra", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    dev = commands.add_parser("dev", help="everything in one process on embedded defaults")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=port_default)
    dev.set_defaults(run=command_dev)

    serve_parser = commands.add_parser("serve", help="run the HTTP gateway")
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=port_default)
    serve_parser.add_argument("--workers", type=_bounded(1, workers_max), default=1)
    serve_parser.set_defaults(run=command_serve)

    worker = commands.add_parser(
        "worker",
        help="run the background work: transfer lifecycle, reconciler, webhook delivery",
    )
    worker.add_argument(
        "--metrics-port",
        type=_bounded(0, 65_535),
        # A string default goes through `type` too, so a bad variable is a clear error.
        default=os.environ.get("KOVRA_WORKER_METRICS_PORT", "0"),
        help="serve Prometheus metrics on this port (0: do not; KOVRA_WORKER_METRICS_PORT)",
    )
    worker.add_argument("--metrics-host", default="127.0.0.1")
    worker.set_defaults(run=command_worker)

    commands.add_parser("migrate", help="apply database migrations").set_defaults(
        run=command_migrate
    )

    ledger_server = commands.add_parser(
        "ledger-server", help="serve the embedded ledger to several processes"
    )
    ledger_server.add_argument("--address", default="127.0.0.1:3300")
    ledger_server.add_argument("--journal", default=None)
    ledger_server.set_defaults(run=command_ledger_server)

    tenant = commands.add_parser("tenant", help="manage tenants").add_subparsers(
        dest="tenant_command", required=True
    )
    create = tenant.add_parser("create", help="create a tenant with an admin API key")
    create.add_argument("--name", required=True)
    create.add_argument("--tier", choices=("starter", "growth", "enterprise"), default="starter")
    create.add_argument("--region", choices=("EU", "UK", "ID"), default="EU")
    create.add_argument("--json", action="store_true")
    create.set_defaults(run=command_tenant_create)
    listing = tenant.add_parser("list", help="tenants in id order, a page at a time")
    listing.add_argument("--status", choices=tenant_statuses, default=None)
    listing.add_argument("--limit", type=_page_limit, default=100)
    listing.add_argument("--after", type=int, default=None, help="the last id of the page before")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=command_tenant_list)

    api_key = commands.add_parser("api-key", help="list, create or revoke API keys")
    api_key.add_argument("action", choices=("list", "create", "revoke"))
    api_key.add_argument("--tenant", type=int, required=True)
    api_key.add_argument(
        "--role", choices=("admin", "operator", "read_only", "compliance"), default="operator"
    )
    api_key.add_argument("--key-id", type=int, default=0)
    api_key.set_defaults(run=command_api_key)

    liquidity = commands.add_parser("liquidity", help="platform liquidity").add_subparsers(
        dest="liquidity_command", required=True
    )
    fund = liquidity.add_parser("fund", help="fund the platform's FX position")
    fund.add_argument("currency")
    fund.add_argument("amount_minor", type=_bounded(1, 10**18))
    fund.set_defaults(run=command_liquidity_fund)
    sanctions = commands.add_parser("sanctions", help="sanctions lists").add_subparsers(
        dest="sanctions_command", required=True
    )
    load = sanctions.add_parser("load", help="load a list (OFAC folder or simple CSV)")
    load.add_argument("path")
    load.add_argument("--format", choices=("ofac", "csv"), required=True)
    load.set_defaults(run=command_sanctions_load)

    audit_parser = commands.add_parser("audit", help="the audit trail").add_subparsers(
        dest="audit_command", required=True
    )
    audit_parser.add_parser("verify", help="check the hash chain; non-zero if broken").set_defaults(
        run=command_audit
    )
    export = audit_parser.add_parser("export", help="write records with a sha256 and count")
    export.add_argument("--from", dest="start", type=_timestamp, required=True)
    export.add_argument("--to", dest="end", type=_timestamp, required=True)
    export.add_argument("--output", required=True)
    export.set_defaults(run=command_audit)

    retention_parser = commands.add_parser(
        "retention", help="rows kept for a while (events, deliveries, idempotency records)"
    ).add_subparsers(dest="retention_command", required=True)
    retention_parser.add_parser(
        "sweep", help="delete every row older than its retention now, in bounded batches"
    ).set_defaults(run=command_retention_sweep)

    secrets_parser = commands.add_parser(
        "secrets", help="the key that seals webhook secrets at rest"
    ).add_subparsers(dest="secrets_command", required=True)
    secrets_parser.add_parser(
        "new-key", help="print a new random key for KOVRA_SECRETS_KEY"
    ).set_defaults(run=command_secrets)
    secrets_parser.add_parser(
        "reseal", help="seal every webhook secret again under KOVRA_SECRETS_KEY"
    ).set_defaults(run=command_secrets)

    freeze = commands.add_parser("freeze", help="freeze or unfreeze a tenant or recipient")
    freeze.add_argument("kind", choices=("tenant", "recipient"))
    freeze.add_argument("id")
    freeze.add_argument("--tenant", type=int, default=0, help="the recipient's tenant")
    freeze.add_argument("--unfreeze", action="store_true")
    freeze.set_defaults(run=command_freeze)
    return parser


def _bounded(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return value

    return parse


def main(argv: list[str] | None = None) -> None:
    arguments = build_parser().parse_args(argv)
    if getattr(arguments, "action", None) == "revoke" and not arguments.key_id:
        build_parser().error("api-key revoke needs --key-id")
    raise SystemExit(arguments.run(arguments))


if __name__ == "__main__":
    main()
