"""The JSON shapes of partners."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import msgspec
from msgspec import Meta

from gateway.http.wire import (
    CurrencyCode,
    FieldsByValue,
    IssuedCurrencyCode,
    Timestamp,
    fields_by_value,
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

# The http adapter needs the URL it sends orders to; the sandbox adapter sends nothing.
adapter_fields: FieldsByValue = {"http": (("url",), ()), "sandbox": ((), ("url",))}


class PartnerCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A `url` for the http adapter, none for the sandbox's (`adapter_fields`)."""

    json_schema_extra: ClassVar[dict[str, Any]] = fields_by_value("adapter", adapter_fields)

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
