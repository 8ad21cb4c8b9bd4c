"""The buckets domain's operating errors, each with a stable `code` (mapped to problems by
`gateway.http.problems`)."""

from __future__ import annotations

from ledger.errors import DomainError


class RuleNotFound(DomainError):
    """No live rule of this customer has this id (another tenant's included)."""

    code = "not_found"


class UnknownBucket(DomainError):
    """A rule names a bucket that is not one of the customer's."""

    code = "unknown_bucket"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, field="bucket_id")


class UnknownPartner(DomainError):
    """A bucket names a partner the tenant does not have."""

    code = "unknown_partner"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, field="partner_id")


class PartnerCurrencyMismatch(DomainError):
    """A bucket is paid on to a partner in the partner's currency only."""

    code = "partner_currency_mismatch"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, field="partner_id")


class TooManyBuckets(DomainError):
    """The customer has as many buckets as a customer may (`buckets_per_customer_max`)."""

    code = "too_many_buckets"


class TooManyRules(DomainError):
    """The customer has as many live rules as a customer may (`rules_per_customer_max`)."""

    code = "too_many_rules"


class InvalidField(DomainError):
    """A field that does not fit the others as the OpenAPI document says (a rule's amount
    field of another kind or a missing one, an account reference without a partner); `field`
    names it."""

    code = "validation_error"


class InvalidWindow(DomainError):
    """A rule's active window that ends before it starts: no schema can say it, so it is the
    domain's own refusal (a `validation_error` would claim the request broke the document)."""

    code = "invalid_window"
