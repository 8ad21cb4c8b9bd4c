"""RFC 9457 problem details: every error Kovra answers, with a stable machine `code`.

Domain code raises domain errors (`ledger.errors.DomainError` and its subclasses in every
package); this is the one module that turns them into problems, with a status per code
(`statuses`) and the request fields at fault. The HTTP edge itself (decoding, auth,
routing) raises `ProblemError` directly. Programmer errors are not mapped here: they become
a plain 500 `internal_error` and are logged loudly.
"""

from __future__ import annotations

import msgspec

from ledger.errors import DomainError

problem_content_type = "application/problem+json"
problem_type_base = "https://docs.kovra.dev/problems/"


class FieldError(msgspec.Struct, frozen=True, kw_only=True):
    field: str
    message: str


class Problem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    type: str
    title: str
    status: int
    code: str
    detail: str = ""
    errors: list[FieldError] = msgspec.field(default_factory=list)
    request_id: str = ""


class ProblemError(Exception):
    """Raised anywhere in a request to answer with a problem."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}


_titles = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

# The HTTP status of each domain error code; a code missing here is a programmer error
# (a test checks that every `DomainError` subclass has one).
statuses: dict[str, int] = {
    "unknown_currency": 422,
    "currency_not_enabled": 422,
    "invalid_amount": 422,
    "insufficient_funds": 422,
    "insufficient_liquidity": 422,
    "settlement_shortfall": 422,
    "account_not_open": 422,
    "account_closed": 422,
    "not_found": 404,
    "conflict": 409,
    "validation_error": 422,
    "hold_already_captured": 409,
    "hold_already_voided": 409,
    "hold_expired": 409,
    "capture_exceeds_hold": 422,
    "attempt_already_failed": 409,
    "transfer_abandoned": 409,
    "ledger_id_conflict": 409,
    "collection_not_credited": 409,
    "ledger_unavailable": 503,
    "quote_expired": 409,
    "quote_already_used": 409,
    "rate_unavailable": 422,
    "rate_stale": 503,
    "daily_limit_exceeded": 422,
    "invalid_bank_details": 422,
    "unsupported_corridor": 422,
    "unknown_recipient": 422,
    "unknown_policy": 422,
    "recipient_currency_mismatch": 422,
    "compliance_blocked": 403,
    "tenant_frozen": 403,
    "recipient_frozen": 403,
    "transfer_not_cancellable": 409,
    "batch_abandoned": 409,
    "batch_rejected": 422,
    "malformed_csv": 400,
    "case_already_decided": 409,
    "too_many_webhook_endpoints": 409,
    "external_id_taken": 409,
    "invalid_webhook_url": 422,
    "dependency_unavailable": 503,
    "no_funding_instructions": 422,
    "invalid_statement": 422,
    "unknown_settlement_account": 422,
    "statement_conflict": 409,
    "exception_already_resolved": 409,
    "release_not_applicable": 422,
    "unknown_tenant": 422,
    "provider_not_configured": 422,
    "provider_currency_mismatch": 422,
    "mandate_inactive": 409,
    "mandate_not_deactivatable": 409,
    "invalid_signature": 401,
    "invalid_collection_date": 422,
    "invalid_consent": 422,
    "unknown_bucket": 422,
    "unknown_partner": 422,
    "partner_currency_mismatch": 422,
    "too_many_buckets": 409,
    "too_many_rules": 409,
    "invalid_window": 422,
    "mandate_customer_mismatch": 422,
    "invalid_cron": 422,
    "unknown_timezone": 422,
    "partner_unreachable": 422,
}

# The status of each code the HTTP edge answers itself (decoding, auth, limits, routing,
# idempotency, outages), beside the domain's `statuses`; the OpenAPI document lists the codes
# of each status from both.
edge_statuses: dict[str, int] = {
    "bad_request": 400,
    "malformed_json": 400,
    "client_disconnected": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "admin_disabled": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "idempotency_conflict": 409,
    "idempotency_in_progress": 409,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "validation_error": 422,
    "conflicting_parameters": 422,
    "cursor_out_of_range": 422,
    "rate_limited": 429,
    "internal_error": 500,
    "dependency_unavailable": 503,
    "not_ready": 503,
}


def codes_of_status(status: int) -> list[str]:
    """Every code answered with `status`, sorted."""
    return sorted(
        {code for code, known in (*statuses.items(), *edge_statuses.items()) if known == status}
    )


# Errors about one request field whatever raised them, so the problem names that field.
_error_fields = {
    "unknown_currency": "currency",
    "currency_not_enabled": "currency",
    "invalid_amount": "amount",
    "capture_exceeds_hold": "amount",
}


def invalid(field: str, *, detail: str, message: str) -> ProblemError:
    """The 422 `validation_error` for one request field (a body field, a query or header
    parameter): `detail` for the document, `message` for the field."""
    return ProblemError(
        422, "validation_error", detail, errors=[FieldError(field=field, message=message)]
    )


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    errors: list[FieldError] | None = None,
    request_id: str = "",
) -> Problem:
    return Problem(
        type=problem_type_base + code,
        title=_titles.get(status, "Error"),
        status=status,
        code=code,
        detail=detail,
        errors=errors or [],
        request_id=request_id,
    )


def from_domain_error(error: DomainError, *, field: str | None = None) -> ProblemError:
    """The problem for `error`, naming `field` when the caller knows which request field it
    is about (a quote has two currencies), else the fields the error names, else the field
    the error's code is about."""
    status = statuses[error.code]
    named = error.field_errors()
    field = field or (None if named else _error_fields.get(error.code))
    if field is not None:
        named = [(field, error.detail)]
    errors = [FieldError(field=name, message=message) for name, message in named] or None
    headers = (
        None
        if error.retry_after_seconds is None
        else {"Retry-After": str(error.retry_after_seconds)}
    )
    return ProblemError(status, error.code, error.detail, errors=errors, headers=headers)


problem_encoder = msgspec.json.Encoder()


def encode(value: Problem) -> bytes:
    return problem_encoder.encode(value)
