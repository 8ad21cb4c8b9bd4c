"""A customer's buckets and allocation rules, and the preview of how an amount would split
(SPEC §11). Every POST takes an `Idempotency-Key`; the rule DELETE is idempotent itself."""

from __future__ import annotations

from typing import Any, Final

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.params import FromPath, FromQuery

from compliance.freezes.service import ensure_active
from gateway.buckets import wire
from gateway.buckets.records import page_max
from gateway.buckets.service import check_rule_fields
from gateway.buckets.views import customer_prefix, rule_prefix
from gateway.http.ids import decode_id
from gateway.http.openapi import ParameterSchemas, RequestExamples, ResponseLinks
from gateway.http.paging import limit_schema, page_request, position_cursor_schema, positions
from gateway.http.requests import decode_body, json_response, principal_of, request_body
from gateway.runtime import runtime_of

buckets_path = "/v1/customers/{customer_id}/buckets"
rules_path = "/v1/customers/{customer_id}/rules"
rule_path = "/v1/customers/{customer_id}/rules/{rule_id}"
preview_path = "/v1/customers/{customer_id}/allocations/preview"


@post(
    "/v1/customers/{customer_id:str}/buckets",
    summary="Add a bucket: a sub-account of the wallet for one of the customer's goals",
    tags=["buckets"],
)
async def create_bucket(
    request: Request[Any, Any, Any], customer_id: FromPath[str]
) -> Response[bytes]:
    runtime = runtime_of(request)
    principal = principal_of(request)
    ensure_active(principal)
    body = decode_body(await request_body(request), wire.BucketCreate)
    customer = decode_id(customer_prefix, customer_id)

    async def execute(bucket_id: int) -> tuple[int, msgspec.Struct]:
        created = await runtime.buckets.create_bucket(
            principal, customer_id=customer, bucket_id=bucket_id, body=body
        )
        return 201, created

    return await runtime.idempotency.response(request, kind="bucket", execute=execute)


@get(
    "/v1/customers/{customer_id:str}/buckets",
    summary="The customer's buckets, with their balances",
    tags=["buckets"],
)
async def list_buckets(
    request: Request[Any, Any, Any],
    customer_id: FromPath[str],
    limit: FromQuery[int] = 50,
    cursor: FromQuery[str | None] = None,
) -> Response[bytes]:
    page = await runtime_of(request).buckets.list_buckets(
        principal_of(request),
        customer_id=decode_id(customer_prefix, customer_id),
        page=page_request(positions, limit=limit, cursor=cursor, limit_max=page_max),
    )
    return json_response(200, wire.BucketPage(data=page.items, next_cursor=page.next_cursor))


@post(
    "/v1/customers/{customer_id:str}/rules",
    summary="Add an allocation rule: how collected money goes into a bucket",
    tags=["buckets"],
)
async def create_rule(
    request: Request[Any, Any, Any], customer_id: FromPath[str]
) -> Response[bytes]:
    runtime = runtime_of(request)
    principal = principal_of(request)
    ensure_active(principal)
    body = decode_body(await request_body(request), wire.RuleCreate)
    check_rule_fields(body)
    customer = decode_id(customer_prefix, customer_id)

    async def execute(rule_id: int) -> tuple[int, msgspec.Struct]:
        created = await runtime.buckets.create_rule(
            principal, customer_id=customer, rule_id=rule_id, body=body
        )
        return 201, created

    return await runtime.idempotency.response(request, kind="rule", execute=execute)


@get(
    "/v1/customers/{customer_id:str}/rules",
    summary="The customer's live allocation rules",
    tags=["buckets"],
)
async def list_rules(
    request: Request[Any, Any, Any],
    customer_id: FromPath[str],
    limit: FromQuery[int] = 50,
    cursor: FromQuery[str | None] = None,
) -> Response[bytes]:
    page = await runtime_of(request).buckets.list_rules(
        principal_of(request),
        customer_id=decode_id(customer_prefix, customer_id),
        page=page_request(positions, limit=limit, cursor=cursor, limit_max=page_max),
    )
    return json_response(200, wire.RulePage(data=page.items, next_cursor=page.next_cursor))


@delete(
    "/v1/customers/{customer_id:str}/rules/{rule_id:str}",
    summary="Delete an allocation rule; later allocations no longer apply it",
    tags=["buckets"],
    status_code=200,
)
async def delete_rule(
    request: Request[Any, Any, Any], customer_id: FromPath[str], rule_id: FromPath[str]
) -> Response[bytes]:
    principal = principal_of(request)
    ensure_active(principal)
    deleted = await runtime_of(request).buckets.delete_rule(
        principal,
        customer_id=decode_id(customer_prefix, customer_id),
        rule_id=decode_id(rule_prefix, rule_id),
    )
    return json_response(200, deleted)


@post(
    "/v1/customers/{customer_id:str}/allocations/preview",
    summary="How an amount would split into the customer's buckets now; moves nothing",
    tags=["buckets"],
)
async def preview(request: Request[Any, Any, Any], customer_id: FromPath[str]) -> Response[bytes]:
    runtime = runtime_of(request)
    principal = principal_of(request)
    body = decode_body(await request_body(request), wire.PreviewCreate)
    customer = decode_id(customer_prefix, customer_id)

    async def execute(_: int) -> tuple[int, msgspec.Struct]:
        return 200, await runtime.buckets.preview(principal, customer_id=customer, body=body)

    return await runtime.idempotency.response(
        request, kind=f"allocation-preview-{customer_id}", execute=execute
    )


route_handlers: Final = (create_bucket, list_buckets, create_rule, list_rules, delete_rule, preview)
# Request and response bodies by operation, for the OpenAPI document (handlers decode and
# encode bodies themselves).
request_bodies: Final[dict[tuple[str, str], type[msgspec.Struct]]] = {
    (buckets_path, "post"): wire.BucketCreate,
    (rules_path, "post"): wire.RuleCreate,
    (preview_path, "post"): wire.PreviewCreate,
}
response_bodies: Final[dict[tuple[str, str], tuple[str, type[msgspec.Struct]]]] = {
    (buckets_path, "post"): ("201", wire.Bucket),
    (buckets_path, "get"): ("200", wire.BucketPage),
    (rules_path, "post"): ("201", wire.Rule),
    (rules_path, "get"): ("200", wire.RulePage),
    (rule_path, "delete"): ("200", wire.Rule),
    (preview_path, "post"): ("200", wire.Preview),
}
parameter_schemas: Final[ParameterSchemas] = {
    (buckets_path, "limit"): limit_schema(page_max),
    (buckets_path, "cursor"): position_cursor_schema,
    (rules_path, "limit"): limit_schema(page_max),
    (rules_path, "cursor"): position_cursor_schema,
}
_bucket_example = "bkt_01JD3XK5Q8N2P7R4S6T9V0W1Y2"
request_examples: Final[RequestExamples] = {
    (buckets_path, "post"): {
        "kind": "savings",
        "name": "Rainy day",
        "currency": "EUR",
        "target_amount": 500000,
    },
    (rules_path, "post"): {
        "bucket_id": _bucket_example,
        "kind": "percentage",
        "percent_bps": 1000,
        "priority": 10,
        "conditions": {
            "minimum_left": 50000,
            "maximum_per_period": {"amount": 20000, "period": "month"},
        },
    },
    (preview_path, "post"): {"amount": 250000, "currency": "EUR"},
}
response_links: Final[ResponseLinks] = {
    (rules_path, "post"): {
        "DeleteRule": (
            (rule_path, "delete"),
            {"customer_id": "$response.body#/customer_id", "rule_id": "$response.body#/id"},
        ),
    },
}
