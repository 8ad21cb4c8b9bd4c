"""Which role of tenant key may call which tenant route: the one table, and its one check.

Every tenant API key (and JWT) carries one role (`gateway.tenancy.records.roles`). What a role
may do is written here once, by method and path template, rather than in each handler, so
that a reader (and `docs/roles.md`, generated from this table) sees the whole policy, and a
forgotten check in one handler cannot open a route. The ASGI middleware
(`gateway.http.middleware`) calls `ensure_role_may_call` for every tenant request after
authentication and before any handler runs, Litestar's or a hot route's
(`gateway.http.hot_routes`). A route this table does not name is refused to every role: a new
route stays closed until it is given its roles here.

Regenerate the reference after changing the table:

    python -m gateway.http.roles --reference > docs/roles.md
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Final

from gateway.http.problems import ProblemError
from gateway.tenancy.records import roles

# Litestar answers OPTIONS itself with the methods a path allows; it runs no handler of
# Kovra's and reveals nothing a key could not learn from the OpenAPI document.
options_method = "OPTIONS"

everyone: Final = frozenset(roles)
# Keys that move the tenant's money and create its objects. A `compliance` key never does:
# the platform issues it to its compliance officers, whose work is to judge payouts.
money_movers: Final = frozenset({"admin", "operator"})
# An endpoint decides where the tenant's payment events go and holds the secret that makes
# them trustworthy, so only the tenant's administrators manage one.
administrators: Final = frozenset({"admin"})
# Separation of duties: a tenant never clears its own payouts, so only the platform's
# compliance officers' keys decide cases.
compliance_officers: Final = frozenset({"compliance"})

# (method, path template as Litestar routes it) → the roles that may call it.
route_roles: Final[Mapping[tuple[str, str], frozenset[str]]] = {
    ("GET", "/v1/balances"): everyone,
    ("GET", "/v1/statements"): everyone,
    ("GET", "/v1/funding-instructions"): everyone,
    ("POST", "/v1/deposits"): money_movers,
    ("POST", "/v1/holds"): money_movers,
    ("GET", "/v1/holds/{hold_id}"): everyone,
    ("POST", "/v1/holds/{hold_id}/capture"): money_movers,
    ("POST", "/v1/holds/{hold_id}/void"): money_movers,
    ("POST", "/v1/quotes"): money_movers,
    ("GET", "/v1/quotes/{quote_id}"): everyone,
    ("POST", "/v1/recipients"): money_movers,
    ("GET", "/v1/recipients/{recipient_id}"): everyone,
    ("POST", "/v1/transfers"): money_movers,
    ("GET", "/v1/transfers"): everyone,
    ("GET", "/v1/transfers/{transfer_id}"): everyone,
    ("POST", "/v1/transfers/{transfer_id}/cancel"): money_movers,
    ("GET", "/v1/transfers/{transfer_id}/messages"): everyone,
    ("POST", "/v1/batches"): money_movers,
    ("GET", "/v1/batches/{batch_id}"): everyone,
    ("GET", "/v1/batches/{batch_id}/messages"): everyone,
    ("POST", "/v1/customers"): money_movers,
    ("GET", "/v1/customers"): everyone,
    ("GET", "/v1/customers/{customer_id}"): everyone,
    ("GET", "/v1/customers/{customer_id}/income-forecast"): everyone,
    ("POST", "/v1/customers/{customer_id}/schedules"): money_movers,
    ("GET", "/v1/customers/{customer_id}/schedules"): everyone,
    ("DELETE", "/v1/customers/{customer_id}/schedules/{schedule_id}"): money_movers,
    ("POST", "/v1/customers/{customer_id}/buckets"): money_movers,
    ("GET", "/v1/customers/{customer_id}/buckets"): everyone,
    ("POST", "/v1/customers/{customer_id}/rules"): money_movers,
    ("GET", "/v1/customers/{customer_id}/rules"): everyone,
    ("DELETE", "/v1/customers/{customer_id}/rules/{rule_id}"): money_movers,
    # A preview moves nothing, but a POST is a money mover's (its answer is kept under its
    # Idempotency-Key), as the table's rule for read-only keys says.
    ("POST", "/v1/customers/{customer_id}/allocations/preview"): money_movers,
    ("GET", "/v1/compliance/cases"): everyone,
    ("POST", "/v1/compliance/cases/{case_id}/decision"): compliance_officers,
    ("POST", "/v1/webhook-endpoints"): administrators,
    ("GET", "/v1/webhook-endpoints"): everyone,
    ("GET", "/v1/webhook-endpoints/{endpoint_id}"): everyone,
    ("PATCH", "/v1/webhook-endpoints/{endpoint_id}"): administrators,
    ("DELETE", "/v1/webhook-endpoints/{endpoint_id}"): administrators,
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret"): administrators,
    ("GET", "/v1/events"): everyone,
    ("GET", "/v1/events/{event_id}"): everyone,
    # Redelivery sends the tenant's own events to its own endpoints again: an operator's
    # remedy for a receiver that was down, not a change of where events go.
    ("POST", "/v1/events/{event_id}/redeliver"): money_movers,
    ("POST", "/v1/mandates"): money_movers,
    ("GET", "/v1/mandates"): everyone,
    ("GET", "/v1/mandates/{mandate_id}"): everyone,
    ("POST", "/v1/mandates/{mandate_id}/deactivate"): money_movers,
    ("POST", "/v1/mandates/{mandate_id}/collect"): money_movers,
    ("GET", "/v1/collections"): everyone,
    ("GET", "/v1/collections/{collection_id}"): everyone,
    ("GET", "/v1/collections/{collection_id}/messages"): everyone,
    ("POST", "/v1/customers/{customer_id}/pulls"): money_movers,
    ("GET", "/v1/orchestrations"): everyone,
    ("GET", "/v1/orchestrations/{orchestration_id}"): everyone,
    # A partner says where customers' money goes and holds the secret its orders are signed
    # with: managed by the tenant's administrators, like a webhook endpoint.
    ("POST", "/v1/partners"): administrators,
    ("GET", "/v1/partners"): everyone,
    ("GET", "/v1/partners/{partner_id}"): everyone,
}


# Tenant-plane routes no key calls: a mandate provider's notifications, proven by their
# signature (`gateway.collections.notifications`). The middleware lets exactly these through
# without credentials; they are not in the table above.
keyless_routes: Final[frozenset[tuple[str, str]]] = frozenset(
    {("POST", "/v1/providers/{provider}/webhooks")}
)


def allowed_roles(method: str, route: str) -> frozenset[str]:
    """The roles that may call `method` on the path template `route`; none if the table
    does not name it."""
    if method == options_method:
        return everyone
    return route_roles.get((method, route), frozenset())


def ensure_role_may_call(role: str, *, method: str, route: str) -> None:
    """Refuse (`403 forbidden`) a key whose role may not call `method` on `route`."""
    allowed = allowed_roles(method, route)
    if role in allowed:
        return
    if not allowed:
        raise ProblemError(403, "forbidden", f"{method} {route} is open to no key")
    raise ProblemError(
        403,
        "forbidden",
        f"a {role} key cannot call {method} {route}; {_listed(allowed)} keys can",
    )


def _listed(allowed: frozenset[str]) -> str:
    """The roles in the order `roles` gives them, joined for a sentence."""
    named = [role for role in roles if role in allowed]
    if len(named) == 1:
        return named[0]
    return ", ".join(named[:-1]) + " and " + named[-1]


def reference() -> str:
    """docs/roles.md: every tenant route and the roles that may call it."""
    lines = [
        "# Roles",
        "",
        "<!-- Generated from gateway/http/roles.py; edit the table there, then run:",
        "     .venv/bin/python -m gateway.http.roles --reference > docs/roles.md",
        "     tests/gateway/http/test_roles.py fails when this file and the module differ. -->",
        "",
        "Every tenant API key and JWT carries one role. The gateway checks the role against"
        " this table for every request under `/v1`, after authentication and the rate limit"
        " and before any handler runs; a role the table does not allow is refused with"
        " `403 forbidden` and changes nothing. A route the table does not name is refused to"
        " every role. `OPTIONS`, answered by the framework with a path's methods, is open to"
        " every role.",
        "",
        "| method | path | " + " | ".join(f"`{role}`" for role in roles) + " |",
        "|---|---|" + "---|" * len(roles),
    ]
    for (method, route), allowed in route_roles.items():
        marks = " | ".join("yes" if role in allowed else "no" for role in roles)
        lines.append(f"| `{method}` | `{route}` | {marks} |")
    return "\n".join(lines) + "\n"


def main(arguments: Sequence[str]) -> int:
    if list(arguments) != ["--reference"]:
        sys.stderr.write("usage: python -m gateway.http.roles --reference > docs/roles.md\n")
        return 2
    sys.stdout.write(reference())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
