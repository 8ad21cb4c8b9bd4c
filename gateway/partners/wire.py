"""The JSON shapes of partners."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from gateway.http.wire import (
    CurrencyCode,
    IssuedCurrencyCode,
    Timestamp,
    printable_text_pattern,
)
from gateway.webhooks.destinations import url_length_max, url_shape_pattern
from rails.partners.partner import PartnerAdapter, PartnerKind

name_length_max = 200
reference_length_max = 128

PartnerName = Annotated[
    str, Meta(min_length=1, max_length=name_length_max, pattern=printable_text_pattern)
]
PartnerReference = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=reference_length_max,
        pattern=printable_text_pattern,
        description="the tenant's account at the partner; the sandbox adapter answers by it",
    ),
]
# The shape the schema can say; the service checks the rest (a host, no credentials or
# fragment, https and a public address in production), naming `url`.
PartnerUrl = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=url_length_max,
        extra_json_schema={"pattern": url_shape_pattern},
        description="where the http adapter POSTs orders; required for it, refused for sandbox",
    ),
]


class PartnerCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    kind: PartnerKind
    name: PartnerName
    currency: CurrencyCode
    adapter: PartnerAdapter
    reference: PartnerReference
    url: PartnerUrl | None = None


class Partner(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: str = "partner"
    kind: str
    name: str
    currency: IssuedCurrencyCode
    adapter: str
    reference: str
    url: str | None
    status: str
    created_at: Timestamp
    # The http adapter's signing secret is shown when it is made (creation) and never again.
    secret: str | None = None


class PartnerPage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[Partner]
    next_cursor: str | None
