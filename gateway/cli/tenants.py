"""`kovra tenant` and `kovra api-key`: onboarding tenants and managing their keys, with the
admin API's own code, each change recorded as an admin action."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

import msgspec

from gateway.cli.common import Subcommands, _actor, _page_limit, _settings, _with_runtime
from gateway.http.paging import PageRequest, row_ids
from gateway.tenancy.records import tenant_statuses

if TYPE_CHECKING:
    from gateway.runtime import Runtime


def register(subcommands: Subcommands) -> None:
    tenant = subcommands.add_parser("tenant", help="manage tenants").add_subparsers(
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

    api_key = subcommands.add_parser("api-key", help="list, create or revoke API keys")
    api_key.add_argument("action", choices=("list", "create", "revoke"))
    api_key.add_argument("--tenant", type=int, required=True)
    api_key.add_argument(
        "--role", choices=("admin", "operator", "read_only", "compliance"), default="operator"
    )
    # `main` refuses `revoke` without it, with the top-level parser's usage.
    api_key.add_argument("--key-id", type=int, default=0)
    api_key.set_defaults(run=command_api_key)


def command_tenant_create(arguments: argparse.Namespace) -> int:
    from gateway.tenancy.service import tenant_view  # noqa: PLC0415

    async def run(runtime: Runtime) -> int:
        tenant, secret = await runtime.tenancy.create_tenant_with_key(
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

    return asyncio.run(_with_runtime(_settings(), run))


def command_tenant_list(arguments: argparse.Namespace) -> int:
    from gateway.tenancy.service import tenant_view  # noqa: PLC0415

    async def run(runtime: Runtime) -> int:
        page = await runtime.tenancy.tenants(
            status=arguments.status,
            page=PageRequest(limit=arguments.limit, cursor=arguments.after, kind=row_ids),
        )
        if arguments.json:
            print(msgspec.json.encode([tenant_view(t) for t in page.items]).decode())
            return 0
        for tenant in page.items:
            print(
                f"{tenant.id:>19}  {tenant.status:<6}  {tenant.limit_policy:<10}  "
                f"{tenant.compliance_region}  {tenant.name}"
            )
        if page.next_cursor is not None:
            print(f"more: --after {page.next_cursor}", file=sys.stderr)
        return 0

    return asyncio.run(_with_runtime(_settings(), run))


def command_api_key(arguments: argparse.Namespace) -> int:
    from gateway.tenancy.records import admin_page_max  # noqa: PLC0415
    from gateway.tenancy.service import api_key_view  # noqa: PLC0415

    async def run(runtime: Runtime) -> int:
        tenancy = runtime.tenancy
        tenant = await tenancy.tenant(arguments.tenant)
        if tenant is None:
            print(f"no tenant {arguments.tenant}", file=sys.stderr)
            return 1
        if arguments.action == "list":
            request: PageRequest[int] | None = PageRequest(
                limit=admin_page_max, cursor=None, kind=row_ids
            )
            while request is not None:
                page = await tenancy.api_keys(tenant_id=tenant.id, page=request)
                for key in page.items:
                    print(msgspec.json.encode(api_key_view(key)).decode())
                request = request.following(page.next_cursor)
            return 0
        if arguments.action == "create":
            key, secret = await tenancy.issue_api_key(
                tenant=tenant, role=arguments.role, actor=_actor()
            )
            print(msgspec.json.encode({"id": key.id, "role": key.role, "api_key": secret}).decode())
            return 0
        revoked = await tenancy.revoke_api_key(
            key_id=arguments.key_id, tenant_id=tenant.id, actor=_actor()
        )
        if revoked is None:
            print(f"no API key {arguments.key_id} for tenant {tenant.id}", file=sys.stderr)
            return 1
        print(f"revoked API key {revoked.id}")
        return 0

    return asyncio.run(_with_runtime(_settings(), run))
